import { describe, expect, it } from "vitest";
import { complete, preview, sendBody, slots, type Template } from "./templates";

const positional: Template = {
  id: "t1",
  business_account_id: "w",
  name: "order_ready",
  language_code: "es",
  category: "UTILITY",
  status: "APPROVED",
  parameter_format: "POSITIONAL",
  components: [
    { type: "HEADER", format: "TEXT", text: "Order {{1}}" },
    { type: "BODY", text: "Hi {{1}}, your order {{2}} is ready. {{1}}, see you!" },
    { type: "FOOTER", text: "Chasqui Bakery" },
    { type: "BUTTONS", buttons: [{ type: "QUICK_REPLY", text: "Thanks" }] },
  ],
};

describe("templates", () => {
  it("finds each variable once, header first, and previews with the values", () => {
    expect(slots(positional).map((s) => `${s.component}.${s.key}`)).toEqual(["header.1", "body.1", "body.2"]);
    const values = { "header.1": "#42", "body.1": "Ana" };
    const shown = preview(positional, values);
    expect(shown.header).toBe("Order #42");
    expect(shown.body).toBe("Hi Ana, your order {{2}} is ready. Ana, see you!");
    expect(shown.footer).toBe("Chasqui Bakery");
    expect(shown.buttons).toEqual(["Thanks"]);
    expect(complete(positional, values)).toBe(false);
    expect(complete(positional, { ...values, "body.2": "#42" })).toBe(true);
  });

  it("builds Meta's send body, positional or named, with header media by link", () => {
    const body = sendBody(positional, "5491100001111", { "header.1": "#42", "body.1": "Ana", "body.2": "#42" });
    expect(body).toEqual({
      to: "5491100001111",
      type: "template",
      template: {
        name: "order_ready",
        language: { code: "es" },
        components: [
          { type: "header", parameters: [{ type: "text", text: "#42" }] },
          { type: "body", parameters: [{ type: "text", text: "Ana" }, { type: "text", text: "#42" }] },
        ],
      },
    });
    const named: Template = {
      ...positional,
      parameter_format: "NAMED",
      components: [
        { type: "HEADER", format: "IMAGE" },
        { type: "BODY", text: "Hola {{first_name}}" },
      ],
    };
    expect(slots(named).map((s) => s.kind)).toEqual(["image", "text"]);
    const sent = sendBody(named, "1", { "header.media": "https://x.test/a.png", "body.first_name": "Ana" }) as {
      template: { components: unknown[] };
    };
    expect(sent.template.components).toEqual([
      { type: "header", parameters: [{ type: "image", image: { link: "https://x.test/a.png" } }] },
      { type: "body", parameters: [{ type: "text", parameter_name: "first_name", text: "Ana" }] },
    ]);
  });
});
