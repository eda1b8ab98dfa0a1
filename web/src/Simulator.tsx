// The phone simulator: for sandbox numbers, a page that plays the customer's phone. Type a
// message, tap buttons and list rows, share a location or react; the business's answers
// arrive live.

import { useCallback, useEffect, useRef, useState } from "react";
import * as api from "./api";
import type { Conversation, Message, PhoneNumber } from "./api";
import { MessageBubble, type Choice } from "./MessageBubble";
import { subscribe } from "./realtime";

type Props = { onBack: () => void };

export function Simulator({ onBack }: Props) {
  const [numbers, setNumbers] = useState<PhoneNumber[]>([]);
  const [numberId, setNumberId] = useState("");
  const [phone, setPhone] = useState("5491100009999");
  const [name, setName] = useState("Test customer");
  const [messages, setMessages] = useState<Message[]>([]);
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const current = useRef({ numberId, phone });
  current.current = { numberId, phone };

  useEffect(() => {
    api.phoneNumbers().then((all) => {
      const sandbox = all.filter((n) => n.kind === "sandbox");
      setNumbers(sandbox);
      if (sandbox[0]) setNumberId((id) => id || sandbox[0].phone_number_id);
    }, (e) => setError(String(e)));
  }, []);

  const load = useCallback(async () => {
    const { numberId, phone } = current.current;
    const digits = phone.replace(/\D/g, "");
    if (!numberId || !digits) return setMessages([]);
    try {
      const p = new URLSearchParams({ phone_number_id: numberId, phone_number: digits, limit: "5" });
      const list = await api.call<{ data: Conversation[] }>("GET", `/platform/v1/whatsapp/conversations?${p}`);
      const mine = list.data.find((c) => (c.phone_number ?? "").replace(/\D/g, "") === digits);
      setMessages(mine ? await api.messages(mine.id) : []);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }, []);

  useEffect(() => {
    load();
  }, [numberId, phone, load]);

  useEffect(
    () =>
      subscribe("/platform/v1/realtime", (c) => {
        if (c.type === "resync" || !c.phone_number_id || c.phone_number_id === current.current.numberId) load();
      }),
    [load],
  );

  const say = async (message: Record<string, unknown>) => {
    setError("");
    try {
      await api.call("POST", `/sandbox/v1/phone_numbers/${numberId}/inbound`, {
        from: phone.replace(/\D/g, ""),
        profile_name: name,
        message,
      });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  const choose = (m: Message, c: Choice) =>
    say({ type: "interactive", context: { id: m.id }, interactive: { type: c.kind, [c.kind]: { id: c.id, title: c.title } } });

  const reactions = new Map<string, string[]>();
  for (const m of messages) {
    const r = m.reaction as { message_id?: string; emoji?: string } | undefined;
    if (m.type === "reaction" && r?.message_id && r.emoji) reactions.set(r.message_id, [...(reactions.get(r.message_id) ?? []), r.emoji]);
  }

  return (
    <main className="simulator">
      <header className="top">
        <button type="button" onClick={onBack}>
          ← Inbox
        </button>
        <strong className="grow">Phone simulator</strong>
      </header>
      {numbers.length === 0 ? (
        <p className="muted placeholder">No sandbox number in this project.</p>
      ) : (
        <div className="sim-body">
          <div className="sim-settings">
            <label>
              Business number
              <select aria-label="Business number" value={numberId} onChange={(e) => setNumberId(e.target.value)}>
                {numbers.map((n) => (
                  <option key={n.phone_number_id} value={n.phone_number_id}>
                    {n.name || n.display_phone_number || n.phone_number_id}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Customer phone
              <input aria-label="Customer phone" value={phone} onChange={(e) => setPhone(e.target.value)} />
            </label>
            <label>
              Customer name
              <input aria-label="Customer name" value={name} onChange={(e) => setName(e.target.value)} />
            </label>
          </div>
          <div className="phone" aria-label="Customer's phone">
            <div className="messages" data-testid="phone-messages">
              {messages
                .filter((m) => m.type !== "reaction")
                .map((m) => (
                  <MessageBubble
                    key={m.id}
                    m={m}
                    asCustomer
                    quoted={messages.find((q) => q.id === (m.context?.id ?? m.context?.message_id))}
                    reactions={reactions.get(m.id) ?? []}
                    onChoose={m.kapso?.direction === "outbound" ? choose : undefined}
                    onReact={
                      m.kapso?.direction === "outbound"
                        ? (target, emoji) => say({ type: "reaction", reaction: { message_id: target.id, emoji } })
                        : undefined
                    }
                  />
                ))}
            </div>
            {error && (
              <div className="error" role="alert">
                {error}
              </div>
            )}
            <form
              className="composer-row"
              onSubmit={(e) => {
                e.preventDefault();
                if (!text.trim()) return;
                say({ type: "text", text: { body: text.trim() } });
                setText("");
              }}
            >
              <input aria-label="Customer message" placeholder="Message" value={text} onChange={(e) => setText(e.target.value)} />
              <button type="submit">Send</button>
              <button
                type="button"
                title="Share location"
                onClick={() => say({ type: "location", location: { latitude: -12.0464, longitude: -77.0428, name: "Plaza Mayor", address: "Lima" } })}
              >
                Share location
              </button>
            </form>
          </div>
        </div>
      )}
    </main>
  );
}
