// Drives the unmodified @kapso/whatsapp-cloud-api SDK against Chasqui's Meta proxy.
// Env: CHASQUI_URL, CHASQUI_API_KEY, PNID (sandbox number), WABA, CUSTOMER (a wa_id whose
// 24-hour window is open), INBOUND_WAMID (a message from CUSTOMER). Exits non-zero on the
// first failure; prints one JSON line per step.
import { WhatsAppClient } from "@kapso/whatsapp-cloud-api";
import assert from "node:assert/strict";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is required`);
  return v;
};
const phoneNumberId = env("PNID");
const businessAccountId = env("WABA");
const to = env("CUSTOMER");
const client = new WhatsAppClient({
  baseUrl: `${env("CHASQUI_URL")}/meta/whatsapp`,
  kapsoApiKey: env("CHASQUI_API_KEY"),
  graphVersion: "v24.0",
});

const steps = [];
async function step(name, fn) {
  try {
    const out = await fn();
    steps.push(name);
    console.log(JSON.stringify({ step: name, ok: true }));
    return out;
  } catch (e) {
    console.log(JSON.stringify({ step: name, ok: false, error: String(e?.stack ?? e), details: e?.details, status: e?.httpStatus }));
    process.exit(1);
  }
}
const wamid = (r) => {
  assert.ok(r.messages?.[0]?.id, JSON.stringify(r));
  return r.messages[0].id;
};

const text = await step("sendText", async () => wamid(await client.messages.sendText({ phoneNumberId, to, body: "Hola from the kapso SDK" })));
await step("sendImage(link)", async () => wamid(await client.messages.sendImage({ phoneNumberId, to, image: { link: "https://example.com/cat.png", caption: "cat" } })));
await step("sendLocation", async () => wamid(await client.messages.sendLocation({ phoneNumberId, to, location: { latitude: -12.05, longitude: -77.04, name: "Lima" } })));
await step("sendContacts", async () => wamid(await client.messages.sendContacts({ phoneNumberId, to, contacts: [{ name: { formattedName: "Ana Diaz", firstName: "Ana" }, phones: [{ phone: "+51 999 111 222", type: "CELL" }] }] })));
await step("sendInteractiveButtons", async () => wamid(await client.messages.sendInteractiveButtons({ phoneNumberId, to, bodyText: "Pick one", buttons: [{ id: "yes", title: "Yes" }, { id: "no", title: "No" }] })));
await step("sendInteractiveList", async () => wamid(await client.messages.sendInteractiveList({ phoneNumberId, to, bodyText: "Menu", buttonText: "Open", sections: [{ title: "Bread", rows: [{ id: "b1", title: "Baguette" }] }] })));
await step("sendInteractiveCtaUrl", async () => wamid(await client.messages.sendInteractiveCtaUrl({ phoneNumberId, to, bodyText: "See it", parameters: { displayText: "Open", url: "https://example.com" } })));
await step("sendReaction", async () => wamid(await client.messages.sendReaction({ phoneNumberId, to, reaction: { messageId: text, emoji: "👍" } })));
await step("sendTemplate", async () => wamid(await client.messages.sendTemplate({ phoneNumberId, to, template: { name: "hello_world", language: { code: "en_US" } } })));
await step("markRead+typing", async () => {
  const r = await client.messages.markRead({ phoneNumberId, messageId: env("INBOUND_WAMID"), typingIndicator: { type: "text" } });
  assert.equal(r.success, true);
});

const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");
const media = await step("media.upload", async () => {
  const r = await client.media.upload({ phoneNumberId, type: "image/png", file: new Blob([png]), fileName: "dot.png" });
  assert.ok(r.id);
  return r.id;
});
await step("media.get", async () => {
  const r = await client.media.get({ mediaId: media, phoneNumberId });
  assert.equal(r.mimeType, "image/png");
  assert.equal(r.fileSize, png.length);
  assert.ok(r.downloadUrl ?? r.url);
});
await step("media.download", async () => {
  const bytes = Buffer.from(await client.media.download({ mediaId: media, phoneNumberId }));
  assert.ok(bytes.equals(png), "downloaded bytes differ");
});
await step("sendImage(id)", async () => wamid(await client.messages.sendImage({ phoneNumberId, to, image: { id: media } })));
await step("media.delete", async () => assert.equal((await client.media.delete({ mediaId: media, phoneNumberId })).success, true));

const created = await step("templates.create", async () => {
  const r = await client.templates.create({
    businessAccountId, name: "kapso_sdk_check", language: "en_US", category: "UTILITY", parameterFormat: "NAMED",
    components: [{ type: "BODY", text: "Hi {{first_name}}, your order shipped.", example: { body_text_named_params: [{ param_name: "first_name", example: "Ana" }] } }],
  });
  assert.ok(r.id);
  return r.id;
});
await step("templates.list", async () => {
  const r = await client.templates.list({ businessAccountId, name: "kapso_sdk_check", limit: 10 });
  assert.equal(r.data.length, 1);
});
await step("templates.get", async () => {
  const r = await client.templates.get({ businessAccountId, templateId: created });
  assert.equal(r.name, "kapso_sdk_check");
});
await step("templates.delete", async () => {
  const r = await client.templates.delete({ businessAccountId, name: "kapso_sdk_check", language: "en_US" });
  assert.equal(r.success, true);
});

await step("businessProfile.update", async () => {
  const r = await client.phoneNumbers.businessProfile.update({ phoneNumberId, about: "Open 9 to 5", vertical: "RETAIL" });
  assert.equal(r.success, true);
});
await step("businessProfile.get", async () => {
  const r = await client.phoneNumbers.businessProfile.get({ phoneNumberId });
  assert.equal(r.data[0].about, "Open 9 to 5");
});

await step("messages.query", async () => {
  const r = await client.messages.query({ phoneNumberId, direction: "outbound", limit: 50 });
  assert.ok(r.data.length >= 10, `only ${r.data.length} outbound messages`);
});
const conversation = await step("conversations.list", async () => {
  const r = await client.conversations.list({ phoneNumberId, limit: 10 });
  assert.ok(r.data.length >= 1);
  return r.data[0].id;
});
await step("conversations.get", async () => {
  const r = await client.conversations.get({ conversationId: conversation });
  assert.equal(r.id, conversation);
});
await step("messages.listByConversation", async () => {
  const r = await client.messages.listByConversation({ phoneNumberId, conversationId: conversation });
  assert.ok(r.data.length >= 10);
});
console.log(JSON.stringify({ done: steps.length }));
