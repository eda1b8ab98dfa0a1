// The inbox end to end: a real node, the sandbox as Meta, Chromium as the agent's browser.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, customerSays, launchBrowser, startServer } from "./server.mjs";

let server;
let browser;
let page;

before(async () => {
  server = await startServer();
  // Slow enough to watch the ticks move: sent, then delivered, then read.
  await server.api("PUT", "/sandbox/v1/settings", { status_delay_ms: 1200 });
  await server.api("POST", "/platform/v1/users", {
    user: { email: "agent@example.com", name: "Agent Smith", role: "member" },
  });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("log in", async () => {
  await page.goto(server.base);
  await page.getByLabel("Email").fill(server.email);
  await page.getByLabel("Password").fill("wrong-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("alert").getByText("invalid email or password").waitFor();
  await page.getByLabel("Password").fill(server.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("Choose a conversation").waitFor();
  await page.locator(".live.on").waitFor();
});

test("a customer's message appears in the list and the thread without reload", async () => {
  await customerSays(server, "5491100001111", "Ana", "Hola! Is the shop open today?");
  const row = page.getByTestId("conversation").filter({ hasText: "Ana" });
  await row.waitFor();
  await row.getByText("Hola! Is the shop open today?").waitFor();
  await row.click();
  const thread = page.getByTestId("messages");
  await thread.getByText("Hola! Is the shop open today?").waitFor();
  // A second message lands in the open thread, live.
  await customerSays(server, "5491100001111", "Ana", "I need a cake for Friday");
  await thread.getByText("I need a cake for Friday").waitFor();
  await page.getByTestId("window").getByText("24-hour window open").waitFor();
});

test("reply and see delivered, then read ticks", async () => {
  await page.getByRole("textbox", { name: "Message" }).fill("Yes, we open at 9. What flavour?");
  await page.getByRole("button", { name: "Send" }).click();
  const bubble = page.getByTestId("message").filter({ hasText: "Yes, we open at 9. What flavour?" });
  await bubble.waitFor();
  await bubble.locator('[data-status="delivered"]').waitFor({ timeout: 15_000 });
  await bubble.locator('[data-status="read"]').waitFor({ timeout: 15_000 });
  // Reply to a specific message, and react to one.
  const cake = page.locator(".bubble.in").filter({ hasText: "I need a cake for Friday" });
  await cake.hover();
  await cake.getByRole("button", { name: "Reply" }).click();
  await page.getByText("Replying to: I need a cake for Friday").waitFor();
  await page.getByRole("textbox", { name: "Message" }).fill("Chocolate or vanilla?");
  await page.getByRole("button", { name: "Send" }).click();
  const answer = page.getByTestId("message").filter({ hasText: "Chocolate or vanilla?" });
  await answer.locator(".quote").getByText("I need a cake for Friday").waitFor();
  await answer.locator(".quote").getByText("Ana").waitFor();
  await cake.hover();
  await cake.getByRole("button", { name: "React 👍" }).click();
  await cake.locator(".reactions").getByText("👍").waitFor();
  await page.screenshot({ path: join(artifacts, "thread.png") });
});

test("attach a photo with a caption", async () => {
  const png = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
    "base64",
  );
  await page.getByRole("textbox", { name: "Message" }).fill("Our cake menu");
  await page.getByLabel("Attach a file").setInputFiles({ name: "menu.png", mimeType: "image/png", buffer: png });
  const bubble = page.getByTestId("message").filter({ hasText: "Our cake menu" });
  await bubble.locator("img").waitFor();
  const src = await bubble.locator("img").getAttribute("src");
  const r = await fetch(new URL(src, server.base));
  assert.equal(r.status, 200);
  assert.deepEqual(Buffer.from(await r.arrayBuffer()), png);
});

test("assign to a member and filter by assignee", async () => {
  await page.getByLabel("Assigned to").selectOption({ label: "Agent Smith" });
  await page.getByTestId("conversation").filter({ hasText: "Agent Smith" }).waitFor();
  await page.getByLabel("Assignment").selectOption({ label: "Unassigned" });
  await page.getByText("No conversations").waitFor();
  await page.getByLabel("Assignment").selectOption({ label: "Agent Smith" });
  await page.getByTestId("conversation").filter({ hasText: "Ana" }).waitFor();
  await page.getByLabel("Assignment").selectOption({ label: "Everyone's" });
  // A message in another conversation shows as unread.
  await customerSays(server, "5491100002222", "Beto", "Do you deliver?");
  const beto = page.getByTestId("conversation").filter({ hasText: "Beto" });
  await beto.getByLabel("unread messages").waitFor();
  // Unread state is the user's, kept by the server: it survives a reload, and opening
  // the conversation reads it.
  await page.reload();
  await beto.getByLabel("unread messages").getByText("1").waitFor();
  // Search by name or by digits of the number.
  await page.getByLabel("Search by name or number").fill("bet");
  await page.getByText("No conversations").or(beto).first().waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="conversation"]').length === 1);
  await beto.waitFor();
  await page.getByLabel("Search by name or number").fill("00001111");
  await page.getByTestId("conversation").filter({ hasText: "Ana" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="conversation"]').length === 1);
  await page.getByLabel("Search by name or number").fill("");
  await page.screenshot({ path: join(artifacts, "inbox.png") });
});

test("a phone-sized screen shows the list, then the thread", async () => {
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await phone.goto(server.base);
  // A new page has its own browser context, so it logs in too.
  await phone.getByLabel("Email").fill(server.email);
  await phone.getByLabel("Password").fill(server.password);
  await phone.getByRole("button", { name: "Log in" }).click();
  await phone.getByTestId("conversation").filter({ hasText: "Ana" }).click();
  await phone.getByTestId("messages").getByText("I need a cake for Friday", { exact: true }).waitFor();
  assert.equal(await phone.getByLabel("Conversations", { exact: true }).isVisible(), false);
  await phone.getByLabel("Back to conversations").click();
  await phone.getByLabel("Conversations", { exact: true }).waitFor();
  await phone.screenshot({ path: join(artifacts, "phone.png") });
  await phone.close();
});

test("outside the window only a template goes, with its preview", async () => {
  const numbers = await server.api("GET", "/platform/v1/whatsapp/phone_numbers");
  const waba = numbers.data.find((n) => n.phone_number_id === server.phoneNumberId).business_account_id;
  await server.api("POST", `/meta/whatsapp/v24.0/${waba}/message_templates`, {
    name: "order_ready",
    language: "es",
    category: "UTILITY",
    components: [
      { type: "BODY", text: "Hola {{1}}, tu pedido {{2}} está listo.", example: { body_text: [["Ana", "#42"]] } },
      { type: "FOOTER", text: "Chasqui Bakery" },
    ],
  });
  // The sandbox approves it after its review delay; the cache follows the status webhook.
  for (let i = 0; ; i++) {
    const t = await server.api("GET", "/platform/v1/whatsapp/templates?status=APPROVED&name=order_ready");
    if (t.data.length > 0) break;
    assert.ok(i < 100, "the template was not approved");
    await new Promise((r) => setTimeout(r, 100));
  }
  // The business writes first to a new customer: the window is closed.
  await server.api("POST", `/meta/whatsapp/v24.0/${server.phoneNumberId}/messages`, {
    messaging_product: "whatsapp",
    to: "5491100003333",
    type: "template",
    template: {
      name: "order_ready",
      language: { code: "es" },
      components: [{ type: "body", parameters: [{ type: "text", text: "Carla" }, { type: "text", text: "#76" }] }],
    },
  });
  await page.getByLabel("Status").selectOption("all");
  await page.getByTestId("conversation").filter({ hasText: "+5491100003333" }).click();
  await page.getByTestId("window").getByText("The 24-hour window is closed").waitFor();
  assert.equal(await page.getByRole("textbox", { name: "Message" }).isDisabled(), true);
  await page.getByRole("button", { name: "Choose a template" }).click();
  await page.getByLabel("Template", { exact: true }).selectOption({ label: "order_ready (es)" });
  await page.getByLabel("body {{1}}").fill("Carla");
  await page.getByLabel("body {{2}}").fill("#77");
  const shown = page.getByTestId("template-preview");
  await shown.getByText("Hola Carla, tu pedido #77 está listo.").waitFor();
  await shown.getByText("Chasqui Bakery").waitFor();
  await page.screenshot({ path: join(artifacts, "template.png") });
  await page.getByRole("button", { name: "Send template" }).click();
  const sent = page.getByTestId("message").filter({ hasText: "Carla · #77" });
  await sent.waitFor();
  await sent.locator('[data-status="delivered"], [data-status="read"]').first().waitFor({ timeout: 15_000 });
});

test("the phone simulator plays the customer: types, taps a button, shares a location", async () => {
  await page.getByRole("button", { name: "Simulator" }).click();
  await page.getByLabel("Customer phone").fill("5491100007777");
  await page.getByLabel("Customer name").fill("Sim");
  await page.getByLabel("Customer message").fill("Hi from the phone");
  await page.getByRole("button", { name: "Send" }).click();
  const phone = page.getByTestId("phone-messages");
  await phone.getByText("Hi from the phone").waitFor();
  // The business answers with buttons; they arrive on the phone live and can be tapped.
  await server.api("POST", `/meta/whatsapp/v24.0/${server.phoneNumberId}/messages`, {
    messaging_product: "whatsapp",
    to: "5491100007777",
    type: "interactive",
    interactive: {
      type: "button",
      body: { text: "Pickup or delivery?" },
      action: { buttons: [{ type: "reply", reply: { id: "pickup", title: "Pickup" } }, { type: "reply", reply: { id: "delivery", title: "Delivery" } }] },
    },
  });
  await phone.getByText("Pickup or delivery?").waitFor();
  await phone.getByRole("button", { name: "Delivery" }).click();
  await phone.getByText("↩ Delivery").waitFor();
  await page.getByRole("button", { name: "Share location" }).click();
  await phone.getByText(/Plaza Mayor/).waitFor();
  await page.screenshot({ path: join(artifacts, "simulator.png") });
  // The business sees the customer's answers as Meta would deliver them.
  const list = await server.api("GET", `/platform/v1/whatsapp/conversations?phone_number=5491100007777`);
  const messages = await server.api("GET", `/platform/v1/whatsapp/conversations/${list.data[0].id}/messages?limit=10`);
  const reply = messages.data.find((m) => m.type === "interactive" && m.kapso.direction === "inbound");
  assert.equal(reply.interactive.button_reply.id, "delivery");
  assert.ok(reply.context.id.startsWith("wamid."));
  assert.ok(messages.data.some((m) => m.type === "location"));
  await page.getByRole("button", { name: "← Inbox" }).click();
  await page.getByTestId("conversation").filter({ hasText: "Sim" }).waitFor();
});

test("a workflow's handoff shows as a badge and filters the list", async () => {
  const flow = await server.api("POST", "/platform/v1/workflows", {
    workflow: {
      name: "Straight to a person",
      status: "active",
      definition: {
        nodes: [
          { id: "start", position: { x: 0, y: 0 }, data: { node_type: "start", config: {} } },
          { id: "human", position: { x: 0, y: 100 }, data: { node_type: "handoff", config: { reason: "asked for a person" } } },
        ],
        edges: [{ source: "start", target: "human", label: "next" }],
      },
    },
  });
  await server.api("POST", `/platform/v1/workflows/${flow.data.id}/triggers`, {
    trigger: { trigger_type: "inbound_message", phone_number_id: server.phoneNumberId, active: true },
  });
  await customerSays(server, "5491100008888", "Hugo", "I want to talk to someone");
  const hugo = page.getByTestId("conversation").filter({ hasText: "Hugo" });
  await hugo.getByTestId("workflow-status").getByText("handoff").waitFor();
  const ana = page.getByTestId("conversation").filter({ hasText: "Ana" });
  await page.getByLabel("Handoff").check();
  // The list is refetched: the unfiltered rows stay until the answer arrives.
  await ana.waitFor({ state: "detached" });
  await hugo.waitFor();
  assert.equal(await page.getByTestId("conversation").count(), 1);
  const filtered = await server.api("GET", "/platform/v1/whatsapp/conversations?handoff=true");
  assert.deepEqual(filtered.data.map((c) => c.phone_number), ["+5491100008888"]);
  await page.getByLabel("Handoff").uncheck();
  await ana.waitFor();
});
