import { render, screen, cleanup } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "./api";
import { MessageBubble, preview } from "./MessageBubble";

afterEach(cleanup);

const base = { timestamp: "1700000000" };

describe("MessageBubble", () => {
  it("shows read ticks on an outbound text and none on an inbound one", () => {
    const out: Message = { ...base, id: "w1", type: "text", text: { body: "Hola" }, kapso: { direction: "outbound", status: "read", content: "Hola", contact_name: null } };
    const { container } = render(<MessageBubble m={out} reactions={[]} />);
    expect(screen.getByText("Hola")).toBeTruthy();
    expect(container.querySelector('[data-status="read"]')).toBeTruthy();
    cleanup();
    const inbound: Message = { ...out, id: "w2", kapso: { ...out.kapso!, direction: "inbound", status: "received" } };
    const again = render(<MessageBubble m={inbound} reactions={[]} />);
    expect(again.container.querySelector(".ticks")).toBeNull();
  });

  it("renders the reply context with the quoted sender and preview, and reactions", () => {
    const quoted: Message = { ...base, id: "q", type: "text", text: { body: "Do you ship?" }, kapso: { direction: "inbound", status: "received", content: "Do you ship?", contact_name: "Ana" } };
    const reply: Message = { ...base, id: "r", type: "text", text: { body: "Yes" }, context: { id: "q" }, kapso: { direction: "outbound", status: "sent", content: "Yes", contact_name: null } };
    render(<MessageBubble m={reply} quoted={quoted} reactions={["👍"]} />);
    expect(screen.getByText("Ana")).toBeTruthy();
    expect(screen.getByText("Do you ship?")).toBeTruthy();
    expect(screen.getByText("👍")).toBeTruthy();
  });

  it("renders interactive buttons, media, locations and a click-to-WhatsApp badge", () => {
    const buttons: Message = {
      ...base, id: "b", type: "interactive",
      interactive: { type: "button", body: { text: "Pick one" }, action: { buttons: [{ type: "reply", reply: { id: "y", title: "Yes" } }, { type: "reply", reply: { id: "n", title: "No" } }] } },
      kapso: { direction: "outbound", status: "delivered", content: "Pick one", contact_name: null },
    };
    render(<MessageBubble m={buttons} reactions={[]} />);
    expect(screen.getByText("Pick one")).toBeTruthy();
    expect(screen.getByText("Yes")).toBeTruthy();
    expect(screen.getByText("No")).toBeTruthy();
    cleanup();
    const image: Message = {
      ...base, id: "i", type: "image", image: { id: "m1", caption: "receipt" }, referral: { headline: "Summer sale", source_url: "https://fb.me/ad" },
      kapso: { direction: "inbound", status: "received", content: "receipt", contact_name: "Ana", media_url: "/media/abc" },
    };
    render(<MessageBubble m={image} reactions={[]} />);
    expect(screen.getByRole("img").getAttribute("src")).toBe("/media/abc");
    expect(screen.getByText("Ad: Summer sale")).toBeTruthy();
    expect(preview(image)).toBe("image: receipt");
    cleanup();
    const place: Message = { ...base, id: "l", type: "location", location: { latitude: -12.04, longitude: -77.03, name: "Lima" }, kapso: { direction: "inbound", status: "received", content: null, contact_name: "Ana" } };
    render(<MessageBubble m={place} reactions={[]} />);
    expect(screen.getByText(/Lima/)).toBeTruthy();
  });
});
