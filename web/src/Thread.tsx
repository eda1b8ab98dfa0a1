// The open conversation: header (contact, assignment, end), messages, and the composer,
// which shows the customer-service window and refuses what Meta would refuse.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import * as api from "./api";
import type { Backend } from "./backend";
import type { Conversation, Member, Message, PhoneNumber } from "./api";
import { remaining } from "./format";
import { MessageBubble, preview } from "./MessageBubble";
import { TemplatePicker } from "./TemplatePicker";

type Props = {
  backend: Backend;
  conversation: Conversation;
  messages: Message[];
  members: Member[];
  numbers: PhoneNumber[];
  onChanged: () => void;
  onBack: () => void;
};

export function Thread({ backend, conversation: c, messages, members, numbers, onChanged, onBack }: Props) {
  const [picking, setPicking] = useState(false);
  const waba = numbers.find((n) => n.phone_number_id === c.phone_number_id)?.business_account_id ?? null;
  const loadTemplates = useCallback(() => backend.templates(waba), [backend, waba]);
  const [text, setText] = useState("");
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const end = useRef<HTMLDivElement>(null);
  const windowOpen = c.kapso?.customer_service_window_open ?? false;
  const to = (c.phone_number ?? "").replace(/^\+/, "");

  const byId = useMemo(() => new Map(messages.map((m) => [m.id, m])), [messages]);
  const reactions = useMemo(() => {
    const map = new Map<string, string[]>();
    for (const m of messages) {
      if (m.type !== "reaction") continue;
      const r = m.reaction as { message_id?: string; emoji?: string } | undefined;
      if (r?.message_id && r.emoji) map.set(r.message_id, [...(map.get(r.message_id) ?? []), r.emoji]);
    }
    return map;
  }, [messages]);

  useEffect(() => {
    end.current?.scrollIntoView?.({ block: "end" });
  }, [messages.length, c.id]);

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError("");
    try {
      await work();
      onChanged();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const sendText = (e: React.FormEvent) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return;
    run(async () => {
      await backend.send(c, {
        to,
        type: "text",
        text: { body },
        ...(replyTo ? { context: { message_id: replyTo.id } } : {}),
      });
      setText("");
      setReplyTo(null);
    });
  };

  const attach = (file: File) =>
    run(async () => {
      const upload = backend.upload;
      if (!upload) return;
      const id = await upload(c, file);
      const kind = api.mediaKind(file.type);
      const caption = text.trim();
      const media: Record<string, string> = { id };
      if (kind === "document") media.filename = file.name;
      if (caption && kind !== "audio") media.caption = caption;
      await backend.send(c, { to, type: kind, [kind]: media });
      setText("");
    });

  const react = (m: Message, emoji: string) =>
    run(() => backend.send(c, { to, type: "reaction", reaction: { message_id: m.id, emoji } }));

  const assignee = c.assigned_user_id ?? "";
  const name = c.kapso?.contact_name || c.phone_number || "Unknown";

  return (
    <section className="thread" aria-label={`Conversation with ${name}`}>
      <header className="thread-header">
        <button type="button" className="back" onClick={onBack} aria-label="Back to conversations">
          ←
        </button>
        <div className="who">
          <strong>{name}</strong>
          <span className="muted">{c.phone_number}</span>
        </div>
{backend.canAssign && (
        <label className="assign">
          <span className="sr-only">Assigned to</span>
          <select
            aria-label="Assigned to"
            value={assignee}
            disabled={busy}
            onChange={(e) => {
              const user = e.target.value;
              run(() => (user ? api.assign(c.id, user) : api.unassign(c.id)));
            }}
          >
            <option value="">Unassigned</option>
            {members.map((m) => (
              <option key={m.user_id} value={m.user_id}>
                {m.name || m.email}
              </option>
            ))}
          </select>
        </label>
)}
        {c.status !== "active" ? (
          <span className="badge">Ended</span>
        ) : backend.canAssign ? (
          <button type="button" disabled={busy} onClick={() => run(() => api.setConversationStatus(c.id, "ended"))}>
            End
          </button>
        ) : null}
      </header>
      <div className="messages" data-testid="messages">
        {messages
          .filter((m) => m.type !== "reaction")
          .map((m) => {
            const ctx = m.context?.id ?? m.context?.message_id;
            return (
              <MessageBubble
                key={m.id}
                m={m}
                quoted={ctx ? byId.get(ctx) : undefined}
                reactions={reactions.get(m.id) ?? []}
                onReply={windowOpen ? setReplyTo : undefined}
                onReact={windowOpen ? react : undefined}
              />
            );
          })}
        <div ref={end} />
      </div>
      <footer className="composer">
        <div className={`window ${windowOpen ? "open" : "closed"}`} data-testid="window">
          {windowOpen
            ? `24-hour window open · closes in ${remaining(c.kapso?.customer_service_window_expires_at)}`
            : "The 24-hour window is closed: only an approved template can be sent."}{" "}
          <button type="button" className="link" onClick={() => setPicking((p) => !p)}>
            {windowOpen ? "Template" : "Choose a template"}
          </button>
        </div>
        {picking && (
          <TemplatePicker
            load={loadTemplates}
            to={to}
            onSend={async (body) => {
              await backend.send(c, body);
              onChanged();
            }}
            onClose={() => setPicking(false)}
          />
        )}
        {replyTo && (
          <div className="replying">
            Replying to: {preview(replyTo)}{" "}
            <button type="button" onClick={() => setReplyTo(null)} aria-label="Cancel reply">
              ✕
            </button>
          </div>
        )}
        {error && (
          <div className="error" role="alert">
            {error}
          </div>
        )}
        <form onSubmit={sendText}>
          {backend.upload && (
            <label className={`attach ${!windowOpen || busy ? "disabled" : ""}`} title="Attach a file">
              📎
              <input
                type="file"
                aria-label="Attach a file"
                disabled={!windowOpen || busy}
                onChange={(e) => {
                  const file = e.target.files?.[0];
                  e.target.value = "";
                  if (file) attach(file);
                }}
              />
            </label>
          )}
          <textarea
            aria-label="Message"
            placeholder={windowOpen ? "Type a message" : "Window closed"}
            value={text}
            disabled={!windowOpen || busy}
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) sendText(e);
            }}
          />
          <button type="submit" disabled={!windowOpen || busy || !text.trim()}>
            Send
          </button>
        </form>
      </footer>
    </section>
  );
}
