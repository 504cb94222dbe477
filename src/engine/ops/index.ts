// Registers every op kernel.
import "./elementwise.ts";
import "./shape.ts";
import "./nn.ts";
import "./resize.ts";
import "./more.ts";
import "./loss.ts";
import "./elementwise-grad.ts";
import "./shape-grad.ts";
import "./nn-grad.ts";
import "./activation-grad.ts";
import "./arithmetic-grad.ts";
import "./reduce-grad.ts";
import "./normalization-grad.ts";
import "./index-grad.ts";
import "./resize-grad.ts";
import "./conv-transpose-grad.ts";
import "./quantize-grad.ts";
