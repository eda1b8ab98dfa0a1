// One message of a thread, rendered by its type, with reply context, reactions, a
// click-to-WhatsApp badge and delivery ticks.

import type { Message } from "./api";
import { secondsToIso, time } from "./format";

type Obj = Record<string, unknown>;

const obj = (v: unknown): Obj => (v && typeof v === "object" ? (v as Obj) : {});
const str = (v: unknown): string => (typeof v === "string" ? v : "");

/** A short text for a message: for list previews and reply context. */
export function preview(m: Message): string {
  const body = obj(m[m.type]);
  switch (m.type) {
    case "text":
      return str(body.body);
    case "image":
    case "video":
    case "document":
    case "audio":
    case "sticker":
      return `${m.type}${str(body.caption) ? `: ${str(body.caption)}` : str(body.filename) ? `: ${str(body.filename)}` : ""}`;
    default:
      return m.kapso?.content ?? m.type;
  }
}

function Ticks({ status }: { status: string }) {
  const label: Record<string, string> = {
    pending: "…",
    sent: "✓",
    delivered: "✓✓",
    read: "✓✓",
    played: "✓✓",
    failed: "⚠",
  };
  return (
    <span className={`ticks ticks-${status}`} data-status={status} title={status} aria-label={status}>
      {label[status] ?? ""}
    </span>
  );
}

function Media({ m }: { m: Message }) {
  const body = obj(m[m.type]);
  const url = m.kapso?.media_url ?? (str(body.link) || null);
  const caption = str(body.caption);
  let inner;
  if (!url) inner = <span className="media-missing">[{m.type}]</span>;
  else if (m.type === "image" || m.type === "sticker") inner = <img className="media" src={url} alt={caption || m.type} />;
  else if (m.type === "video") inner = <video className="media" src={url} controls />;
  else if (m.type === "audio") inner = <audio src={url} controls />;
  else
    inner = (
      <a href={url} target="_blank" rel="noreferrer">
        📄 {str(body.filename) || "document"}
      </a>
    );
  return (
    <div>
      {inner}
      {caption && <div className="caption">{caption}</div>}
    </div>
  );
}

/** A customer's answer to an interactive message (the phone simulator taps these). */
export type Choice = { kind: "button_reply" | "list_reply"; id: string; title: string };

function Interactive({ m, onChoose }: { m: Message; onChoose?: (c: Choice) => void }) {
  const i = obj(m.interactive);
  const reply = obj(i.button_reply ?? i.list_reply);
  if (str(reply.title)) return <div>↩ {str(reply.title)}</div>;
  if (i.type === "nfm_reply") return <div>📋 {m.kapso?.content ?? "form answered"}</div>;
  const action = obj(i.action);
  const buttons = Array.isArray(action.buttons) ? (action.buttons as Obj[]) : [];
  const sections = Array.isArray(action.sections) ? (action.sections as Obj[]) : [];
  return (
    <div>
      {str(obj(i.header).text) && <div className="header">{str(obj(i.header).text)}</div>}
      <div>{str(obj(i.body).text)}</div>
      {str(obj(i.footer).text) && <div className="footer">{str(obj(i.footer).text)}</div>}
      <div className="choices">
        {buttons.map((b, n) => {
          const reply = obj(b.reply);
          return onChoose ? (
            <button type="button" className="choice" key={n} onClick={() => onChoose({ kind: "button_reply", id: str(reply.id), title: str(reply.title) })}>
              {str(reply.title)}
            </button>
          ) : (
            <span className="choice" key={n}>
              {str(reply.title)}
            </span>
          );
        })}
        {sections.flatMap((s, n) =>
          (Array.isArray(s.rows) ? (s.rows as Obj[]) : []).map((r, k) =>
            onChoose ? (
              <button type="button" className="choice" key={`${n}-${k}`} onClick={() => onChoose({ kind: "list_reply", id: str(r.id), title: str(r.title) })}>
                {str(r.title)}
              </button>
            ) : (
              <span className="choice" key={`${n}-${k}`}>
                {str(r.title)}
              </span>
            ),
          ),
        )}
        {str(obj(action.parameters).display_text) && (
          <span className="choice">🔗 {str(obj(action.parameters).display_text)}</span>
        )}
      </div>
    </div>
  );
}

function Content({ m, onChoose }: { m: Message; onChoose?: (c: Choice) => void }) {
  switch (m.type) {
    case "text":
      return <div className="text">{str(obj(m.text).body)}</div>;
    case "image":
    case "video":
    case "audio":
    case "document":
    case "sticker":
      return <Media m={m} />;
    case "interactive":
      return <Interactive m={m} onChoose={onChoose} />;
    case "location": {
      const l = obj(m.location);
      return (
        <a href={`https://maps.google.com/?q=${l.latitude},${l.longitude}`} target="_blank" rel="noreferrer">
          📍 {str(l.name) || str(l.address) || `${l.latitude}, ${l.longitude}`}
        </a>
      );
    }
    case "template": {
      const t = obj(m.template);
      const values = (Array.isArray(t.components) ? (t.components as Obj[]) : [])
        .flatMap((c) => (Array.isArray(c.parameters) ? (c.parameters as Obj[]) : []))
        .map((p) => str(p.text) || str(obj(p[str(p.type)]).link))
        .filter(Boolean);
      return (
        <div>
          <div className="template-name">Template {str(t.name)}</div>
          <div className="text">{values.length ? values.join(" · ") : m.kapso?.content}</div>
        </div>
      );
    }
    default:
      return <div className="text">{m.kapso?.content || `[${m.type}]`}</div>;
  }
}

/** Who wrote a quoted message, as the reader sees it. */
function quoteAuthor(q: Message, asCustomer?: boolean): string {
  const fromBusiness = q.kapso?.direction === "outbound";
  if (fromBusiness !== Boolean(asCustomer)) return "You";
  return asCustomer ? "Business" : q.kapso?.contact_name || "Customer";
}

type Props = {
  m: Message;
  quoted?: Message;
  reactions: string[];
  onReply?: (m: Message) => void;
  onReact?: (m: Message, emoji: string) => void;
  /** Seen from the customer's phone: the business's messages on the left. */
  asCustomer?: boolean;
  onChoose?: (m: Message, c: Choice) => void;
};

export function MessageBubble({ m, quoted, reactions, onReply, onReact, asCustomer, onChoose }: Props) {
  const outbound = m.kapso?.direction === "outbound";
  const mine = asCustomer ? !outbound : outbound;
  const referral = obj(m.referral);
  const contextId = m.context?.id ?? m.context?.message_id;
  return (
    <div className={`bubble ${mine ? "out" : "in"}`} data-wamid={m.id} data-testid="message">
      {str(referral.source_url) || str(referral.headline) ? (
        <div className="badge ctwa" title={str(referral.source_url)}>
          Ad: {str(referral.headline) || "click-to-WhatsApp"}
        </div>
      ) : null}
      {contextId && (
        <div className="quote">
          <strong>{quoted ? quoteAuthor(quoted, asCustomer) : ""}</strong>{" "}
          {quoted ? preview(quoted) : "a message"}
        </div>
      )}
      <Content m={m} onChoose={onChoose ? (c) => onChoose(m, c) : undefined} />
      <div className="meta">
        <span>{time(secondsToIso(m.timestamp))}</span>
        {outbound && !asCustomer && <Ticks status={m.kapso?.status ?? "pending"} />}
      </div>
      {reactions.length > 0 && <div className="reactions">{reactions.join(" ")}</div>}
      {(onReply || onReact) && (
        <div className="actions">
          {onReply && (
            <button type="button" onClick={() => onReply(m)} aria-label="Reply">
              ↩
            </button>
          )}
          {onReact && (
            <button type="button" onClick={() => onReact(m, "👍")} aria-label="React 👍">
              👍
            </button>
          )}
        </div>
      )}
    </div>
  );
}
