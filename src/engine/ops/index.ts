// Registers every op kernel.
import "./elementwise.ts";
import "./shape.ts";
import "./nn.ts";
import "./resize.ts";
import "./pointwise.ts";
import "./indexing.ts";
import "./normalization.ts";
import "./loss.ts";
import "./elementwise-grad.ts";
import "./shape-grad.ts";
import "./nn-grad.ts";
