// The embedded inbox: confined to its number, framed only by its allowed origins, refused
// once expired.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, customerSays, launchBrowser, startServer } from "./server.mjs";

let server;
let browser;
let other;

before(async () => {
  server = await startServer();
  const created = await server.api("POST", "/platform/v1/whatsapp/phone_numbers", {
    whatsapp_phone_number: { kind: "sandbox", name: "Second line" },
  });
  other = created.data.phone_number_id;
  await customerSays(server, "5491100005555", "Eva", "Hello first line");
  await server.api("POST", `/sandbox/v1/phone_numbers/${other}/inbound`, {
    from: "5491100006666",
    profile_name: "Dora",
    message: { type: "text", text: { body: "Hello second line" } },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const embed = (body) => server.api("POST", "/platform/v1/inbox_embeds", { inbox_embed: body });

test("an embed for one number neither lists nor opens another number's conversation", async () => {
  const { data } = await embed({ name: "First line desk", scope_type: "phone_number", scope_id: server.phoneNumberId, default_mode: "dark" });
  const page = await browser.newPage();
  await page.goto(data.embed_url);
  const eva = page.getByTestId("conversation").filter({ hasText: "Eva" });
  await eva.waitFor();
  await page.getByText("First line desk").waitFor();
  assert.equal(await page.getByTestId("conversation").filter({ hasText: "Dora" }).count(), 0);
  await eva.click();
  await page.getByTestId("messages").getByText("Hello first line").waitFor();
  // No assignments inside an embed.
  assert.equal(await page.getByLabel("Assigned to").count(), 0);
  // It replies within its scope, live.
  await page.getByRole("textbox", { name: "Message" }).fill("Hi Eva, from the embed");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByTestId("message").filter({ hasText: "Hi Eva, from the embed" }).waitFor();
  await customerSays(server, "5491100005555", "Eva", "Thanks!");
  await page.getByTestId("messages").getByText("Thanks!").waitFor();
  // The other number's conversation cannot be read through the embed's API either.
  const all = await server.api("GET", `/platform/v1/whatsapp/conversations?phone_number_id=${other}`);
  const dora = all.data[0].id;
  const status = await page.evaluate(
    async ([token, id]) => (await fetch(`/embed-api/conversations/${id}/messages`, { headers: { "X-Embed-Token": token } })).status,
    [data.token, dora],
  );
  assert.equal(status, 404);
  await page.screenshot({ path: join(artifacts, "embed.png") });
  await page.close();
});

test("an embed is framed only by its allowed origins", async () => {
  const port = new URL(server.base).port;
  const allowed = await embed({ name: "Allowed", allowed_origins: [`http://localhost:${port}`] });
  const refused = await embed({ name: "Refused", allowed_origins: ["https://elsewhere.example"] });
  const page = await browser.newPage();
  // A page of another origin (localhost, not 127.0.0.1, and a response without our CSP)
  // frames both.
  await page.goto(`http://localhost:${port}/healthz`);
  await page.setContent(
    `<iframe id="ok" src="${allowed.data.embed_url}" width="800" height="500"></iframe>` +
      `<iframe id="no" src="${refused.data.embed_url}" width="800" height="500"></iframe>`,
  );
  const ok = page.frameLocator("#ok");
  await ok.getByTestId("conversation").filter({ hasText: "Eva" }).waitFor();
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await page.frameLocator("#no").getByTestId("conversation").count(), 0);
  await page.close();
});

test("an expired or revoked embed is refused", async () => {
  const soon = new Date(Date.now() + 1500).toISOString();
  const expiring = await embed({ name: "Short-lived", expires_at: soon });
  const page = await browser.newPage();
  const first = await page.goto(expiring.data.embed_url);
  assert.equal(first.status(), 200);
  await new Promise((r) => setTimeout(r, 2000));
  const again = await page.goto(expiring.data.embed_url);
  assert.equal(again.status(), 401);
  await page.getByText("has expired").waitFor();
  const revoked = await embed({ name: "Revoked" });
  await server.api("DELETE", `/platform/v1/inbox_embeds/${revoked.data.id}`);
  const gone = await page.goto(revoked.data.embed_url);
  assert.equal(gone.status(), 401);
  await page.getByText("was revoked").waitFor();
  await page.close();
});
