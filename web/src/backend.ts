// Where the inbox gets its data: the dashboard (session cookie, the whole project) or an
// embed (its token, confined to its numbers, no assignments).

import * as api from "./api";
import type { Conversation, ConversationQuery, Member, Message, PhoneNumber } from "./api";
import type { Template } from "./templates";

export type Backend = {
  kind: "dashboard" | "embed";
  conversations(q: ConversationQuery, me: string): Promise<Conversation[]>;
  conversation(id: string): Promise<Conversation>;
  messages(id: string): Promise<Message[]>;
  /** Sends Meta's body in a conversation (to its customer). */
  send(c: Conversation, body: Record<string, unknown>): Promise<void>;
  templates(businessAccountId: string | null): Promise<Template[]>;
  members(): Promise<Member[]>;
  numbers(): Promise<PhoneNumber[]>;
  realtimePath: string;
  canAssign: boolean;
  /** Marks a conversation read for the user (dashboard only; embeds count locally). */
  markRead?: (id: string) => Promise<void>;
  /** Uploads a file from the conversation's number; returns the media id (dashboard only). */
  upload?: (c: Conversation, file: File) => Promise<string>;
};

export const dashboard: Backend = {
  kind: "dashboard",
  conversations: api.conversations,
  conversation: api.conversation,
  messages: api.messages,
  send: (c, body) => api.send(c.phone_number_id, body),
  templates: async (waba) => {
    const p = new URLSearchParams({ status: "APPROVED" });
    if (waba) p.set("business_account_id", waba);
    return (await api.call<{ data: Template[] }>("GET", `/platform/v1/whatsapp/templates?${p}`)).data;
  },
  members: api.members,
  numbers: api.phoneNumbers,
  realtimePath: "/platform/v1/realtime",
  canAssign: true,
  upload: (c, file) => api.upload(c.phone_number_id, file),
  markRead: api.markRead,
};

export type EmbedSession = { name: string; default_mode: "system" | "light" | "dark"; phone_numbers: PhoneNumber[] };

/** The embed's backend for a token. */
export function embed(token: string): Backend & { session(): Promise<EmbedSession> } {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await fetch(path, {
      method,
      headers: { "X-Embed-Token": token, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!r.ok) {
      const e = parsed?.error;
      throw new api.ApiError(r.status, typeof e === "string" ? e : e?.message ?? `request failed (${r.status})`);
    }
    return parsed as T;
  };
  return {
    kind: "embed",
    session: async () => (await call<{ data: EmbedSession }>("GET", "/embed-api/session")).data,
    conversations: async (q) => {
      const p = new URLSearchParams({ limit: "100" });
      if (q.status !== "all") p.set("status", q.status);
      if (q.search.trim()) p.set("search", q.search.trim());
      if (q.phoneNumberId) p.set("phone_number_id", q.phoneNumberId);
      if (q.handoff) p.set("handoff", "true");
      const r = await call<{ data: Conversation[] }>("GET", `/embed-api/conversations?${p}`);
      return r.data;
    },
    conversation: async (id) => (await call<{ data: Conversation }>("GET", `/embed-api/conversations/${id}`)).data,
    messages: async (id) =>
      [...(await call<{ data: Message[] }>("GET", `/embed-api/conversations/${id}/messages?limit=100`)).data].reverse(),
    send: async (c, body) => {
      await call("POST", `/embed-api/conversations/${c.id}/messages`, body);
    },
    templates: async () => (await call<{ data: Template[] }>("GET", "/embed-api/templates")).data,
    members: async () => [],
    numbers: async () => (await call<{ data: EmbedSession }>("GET", "/embed-api/session")).data.phone_numbers,
    realtimePath: `/embed-api/realtime?token=${encodeURIComponent(token)}`,
    canAssign: false,
  };
}
