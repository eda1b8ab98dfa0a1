// Verifies a captured Chasqui delivery with Node's own crypto (no Chasqui code):
// X-Webhook-Signature (hex HMAC-SHA256 of the body) and, for kind meta, X-Hub-Signature-256.
// Usage: node verify_webhook.mjs CAPTURE.json ({"secret", "headers", "body_base64"}).
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

const capture = JSON.parse(readFileSync(process.argv[2], "utf8"));
const body = Buffer.from(capture.body_base64, "base64");
const hex = createHmac("sha256", capture.secret).update(body).digest("hex");
const same = (a, b) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
const kapso = capture.headers["x-webhook-signature"];
const meta = capture.headers["x-hub-signature-256"];
if (kapso !== undefined && !same(kapso, hex)) throw new Error("X-Webhook-Signature does not verify");
if (meta !== undefined && !same(meta, `sha256=${hex}`)) throw new Error("X-Hub-Signature-256 does not verify");
if (kapso === undefined && meta === undefined) throw new Error("no signature header");
console.log(JSON.stringify({ verified: true }));
