// The team inbox: filters and the conversation list on the left, the open thread on the
// right (one at a time on a phone-sized screen), kept current by the realtime feed.

import { useCallback, useEffect, useRef, useState } from "react";
import type { Conversation, ConversationQuery, Member, Message, PhoneNumber, Session } from "./api";
import type { Backend } from "./backend";
import { time } from "./format";
import { subscribe, type Change } from "./realtime";
import { Thread } from "./Thread";

type Props = {
  backend: Backend;
  /** The logged-in user (none in an embed). */
  session?: Session;
  title?: string;
  onLogout?: () => void;
  /** Opens the phone simulator (dashboard only). */
  onSimulator?: () => void;
};

export function Inbox({ backend, session, title, onLogout, onSimulator }: Props) {
  const me = session?.user.id ?? "";
  const [query, setQuery] = useState<ConversationQuery>({
    status: "active",
    assignment: "all",
    search: "",
    phoneNumberId: "",
    handoff: new URLSearchParams(location.search).get("handoff") === "true",
  });
  const [list, setList] = useState<Conversation[]>([]);
  const [openId, setOpenId] = useState<string | null>(null);
  const [open, setOpen] = useState<Conversation | null>(null);
  const [thread, setThread] = useState<Message[]>([]);
  const [members, setMembers] = useState<Member[]>([]);
  const [numbers, setNumbers] = useState<PhoneNumber[]>([]);
  const [unread, setUnread] = useState<Record<string, number>>({});
  const [live, setLive] = useState(false);
  const [error, setError] = useState("");
  const [notify, setNotify] = useState(typeof Notification !== "undefined" && Notification.permission === "granted");

  // The latest values, for the realtime handler.
  const state = useRef({ query, openId, notify });
  state.current = { query, openId, notify };

  const loadList = useCallback(async () => {
    try {
      setList(await backend.conversations(state.current.query, me));
      setError("");
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }, [me, backend]);

  const loadThread = useCallback(async () => {
    const id = state.current.openId;
    if (!id) return;
    try {
      const [c, m] = await Promise.all([backend.conversation(id), backend.messages(id)]);
      if (state.current.openId === id) {
        setOpen(c);
        setThread(m);
        // What the agent sees is read.
        backend.markRead?.(id).catch(() => undefined);
      }
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }, [backend]);

  useEffect(() => {
    loadList();
  }, [query, loadList]);

  useEffect(() => {
    setOpen(null);
    setThread([]);
    if (openId) {
      setUnread((u) => ({ ...u, [openId]: 0 }));
      loadThread();
    }
  }, [openId, loadThread]);

  useEffect(() => {
    backend.members().then(setMembers).catch(() => setMembers([]));
    backend.numbers().then(setNumbers).catch(() => setNumbers([]));
  }, [backend]);

  useEffect(
    () =>
      subscribe(backend.realtimePath, (c: Change) => {
        const current = state.current.openId;
        if (c.type === "message" && c.conversation_id && c.conversation_id !== current) {
          setUnread((u) => ({ ...u, [c.conversation_id as string]: (u[c.conversation_id as string] ?? 0) + 1 }));
          if (state.current.notify && backend.kind === "dashboard" && document.hidden && typeof Notification !== "undefined") {
            new Notification("New WhatsApp message", { body: "A conversation has a new message" });
          }
        }
        if (c.type !== "status") loadList();
        if (c.type === "resync" || c.type === "status" || !c.conversation_id || c.conversation_id === current) {
          loadThread();
        }
      }, setLive),
    [backend, loadList, loadThread],
  );

  const askNotifications = async () => {
    if (typeof Notification === "undefined") return;
    setNotify((await Notification.requestPermission()) === "granted");
  };

  const set = (patch: Partial<ConversationQuery>) => setQuery((q) => ({ ...q, ...patch }));

  return (
    <div className={`inbox ${openId ? "has-open" : ""}`}>
      <aside className="sidebar">
        <header className="top">
          <strong>{title ?? "Chasqui"}</strong>
          <span className={`live ${live ? "on" : "off"}`} title={live ? "Live" : "Reconnecting"}>
            ●
          </span>
          <span className="muted grow">{session?.user.email}</span>
          {session && !notify && typeof Notification !== "undefined" && (
            <button type="button" onClick={askNotifications} title="Browser notifications for new messages">
              Alerts
            </button>
          )}
          {onSimulator && (
            <button type="button" onClick={onSimulator} title="Chat with the business as a customer">
              Simulator
            </button>
          )}
          {onLogout && (
            <button type="button" onClick={onLogout}>
              Log out
            </button>
          )}
        </header>
        <div className="filters">
          <input
            type="search"
            aria-label="Search by name or number"
            placeholder="Search name or number"
            value={query.search}
            onChange={(e) => set({ search: e.target.value })}
          />
          <div className="row">
            <select aria-label="Status" value={query.status} onChange={(e) => set({ status: e.target.value as ConversationQuery["status"] })}>
              <option value="active">Active</option>
              <option value="ended">Ended</option>
              <option value="all">All</option>
            </select>
{backend.canAssign && (
            <select aria-label="Assignment" value={query.assignment} onChange={(e) => set({ assignment: e.target.value })}>
              <option value="all">Everyone's</option>
              <option value="me">Assigned to me</option>
              <option value="unassigned">Unassigned</option>
              {members
                .filter((m) => m.user_id !== me)
                .map((m) => (
                  <option key={m.user_id} value={m.user_id}>
                    {m.name || m.email}
                  </option>
                ))}
            </select>
)}
            <label className="check">
              <input type="checkbox" checked={query.handoff} onChange={(e) => set({ handoff: e.target.checked })} />
              Handoff
            </label>
            {numbers.length > 1 && (
              <select aria-label="Phone number" value={query.phoneNumberId} onChange={(e) => set({ phoneNumberId: e.target.value })}>
                <option value="">All numbers</option>
                {numbers.map((n) => (
                  <option key={n.phone_number_id} value={n.phone_number_id}>
                    {n.name || n.display_phone_number || n.phone_number_id}
                  </option>
                ))}
              </select>
            )}
          </div>
        </div>
        {error && (
          <div className="error" role="alert">
            {error}
          </div>
        )}
        <ul className="conversations" aria-label="Conversations">
          {list.length === 0 && <li className="empty muted">No conversations</li>}
          {list.map((c) => (
            <li key={c.id}>
              <button
                type="button"
                className={`conversation ${c.id === openId ? "selected" : ""}`}
                onClick={() => setOpenId(c.id)}
                data-testid="conversation"
              >
                <span className="line">
                  <strong>{c.kapso?.contact_name || c.phone_number}</strong>
                  <span className="muted">{time(c.kapso?.last_message_timestamp ?? c.last_active_at)}</span>
                </span>
                <span className="line">
                  <span className="preview">{c.kapso?.last_message_text ?? ""}</span>
                  {(() => {
                    const n = c.id === openId ? 0 : (c.unread_count ?? unread[c.id] ?? 0);
                    return n > 0 ? (
                      <span className="unread" aria-label="unread messages">
                        {n >= 100 ? "99+" : n}
                      </span>
                    ) : null;
                  })()}
                </span>
                {c.workflow_status && c.workflow_status !== "ended" && (
                  <span className={`badge flow flow-${c.workflow_status}`} data-testid="workflow-status">
                    {c.workflow_status}
                  </span>
                )}
                {c.assigned_user_id && (
                  <span className="badge">
                    {members.find((m) => m.user_id === c.assigned_user_id)?.name ?? "Assigned"}
                  </span>
                )}
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <main className="main">
        {open ? (
          <Thread
            backend={backend}
            conversation={open}
            messages={thread}
            members={members}
            numbers={numbers}
            onChanged={() => {
              loadThread();
              loadList();
            }}
            onBack={() => setOpenId(null)}
          />
        ) : (
          <div className="placeholder muted">Choose a conversation</div>
        )}
      </main>
    </div>
  );
}
