// The dashboard's calls to the Platform API and the Meta proxy: same origin, the session
// cookie, and the CSRF token on every write.

export type Session = {
  user: { id: string; email: string; name: string };
  csrf_token: string;
  expires_at: string;
  projects: { project_id: string; role: string; membership_id: string }[];
};

export type Conversation = {
  id: string;
  phone_number: string | null;
  phone_number_id: string;
  status: "active" | "ended";
  last_active_at: string;
  assigned_user_id: string | null;
  workflow_status?: "running" | "waiting" | "handoff" | "ended" | "failed" | null;
  /** The logged-in user's unread customer messages (capped at 100); null for an embed. */
  unread_count?: number | null;
  kapso?: {
    contact_name: string | null;
    messages_count: number;
    last_message_text: string | null;
    last_message_type: string | null;
    last_message_timestamp: string | null;
    last_inbound_at: string | null;
    customer_service_window_open: boolean;
    customer_service_window_expires_at: string | null;
  };
};

export type StatusEntry = { status: string; timestamp?: string };

export type Message = {
  id: string;
  type: string;
  timestamp: string;
  from?: string;
  to?: string;
  context?: { id?: string; message_id?: string; from?: string };
  [key: string]: unknown;
  kapso?: {
    direction: "inbound" | "outbound";
    status: string;
    content: string | null;
    contact_name: string | null;
    media_url?: string | null;
    statuses?: StatusEntry[];
    whatsapp_conversation_id?: string | null;
  };
};

export type Member = { id: string; user_id: string; email: string; name: string; role: string };
export type PhoneNumber = {
  id: string;
  phone_number_id: string;
  business_account_id?: string | null;
  name?: string;
  display_phone_number?: string;
  kind?: string;
};

/** An API error with the server's message. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrf = "";

/** Remembers the CSRF token of the current session. */
export function setCsrf(token: string) {
  csrf = token;
}

function errorText(body: unknown, status: number): string {
  if (body && typeof body === "object" && "error" in body) {
    const e = (body as { error: unknown; errors?: string[] }).error;
    if (typeof e === "string") {
      const details = (body as { errors?: string[] }).errors;
      return details?.length ? `${e}: ${details.join("; ")}` : e;
    }
    if (e && typeof e === "object" && "message" in e) {
      const meta = e as { message: string; error_data?: { details?: string } };
      return meta.error_data?.details ? `${meta.message} (${meta.error_data.details})` : meta.message;
    }
  }
  return `request failed (${status})`;
}

/** A JSON call; throws ApiError with the server's message on a non-2xx answer. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, errorText(parsed, r.status));
  return parsed as T;
}

export async function currentSession(): Promise<Session | null> {
  try {
    const s = await call<{ data: Session }>("GET", "/auth/session");
    setCsrf(s.data.csrf_token);
    return s.data;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function login(email: string, password: string): Promise<Session> {
  const s = await call<{ data: Session }>("POST", "/auth/login", { email, password });
  setCsrf(s.data.csrf_token);
  return s.data;
}

export async function logout(): Promise<void> {
  await call("POST", "/auth/logout");
  setCsrf("");
}

export type ConversationQuery = {
  status: "active" | "ended" | "all";
  assignment: "all" | "me" | "unassigned" | string;
  search: string;
  phoneNumberId: string;
  handoff: boolean;
};

export async function conversations(q: ConversationQuery, me: string): Promise<Conversation[]> {
  const p = new URLSearchParams({ limit: "100" });
  if (q.status !== "all") p.set("status", q.status);
  if (q.assignment === "me") p.set("assigned_user_id", me);
  else if (q.assignment === "unassigned") p.set("unassigned", "true");
  else if (q.assignment !== "all") p.set("assigned_user_id", q.assignment);
  if (q.search.trim()) p.set("search", q.search.trim());
  if (q.phoneNumberId) p.set("phone_number_id", q.phoneNumberId);
  if (q.handoff) p.set("handoff", "true");
  const r = await call<{ data: Conversation[] }>("GET", `/platform/v1/whatsapp/conversations?${p}`);
  return r.data;
}

export async function conversation(id: string): Promise<Conversation> {
  return (await call<{ data: Conversation }>("GET", `/platform/v1/whatsapp/conversations/${id}`)).data;
}

/** The conversation's messages, oldest first. */
export async function messages(conversationId: string): Promise<Message[]> {
  const r = await call<{ data: Message[] }>(
    "GET",
    `/platform/v1/whatsapp/conversations/${conversationId}/messages?limit=100`,
  );
  return [...r.data].reverse();
}

export async function members(): Promise<Member[]> {
  return (await call<{ data: Member[] }>("GET", "/platform/v1/users?per_page=100")).data;
}

export async function phoneNumbers(): Promise<PhoneNumber[]> {
  return (await call<{ data: PhoneNumber[] }>("GET", "/platform/v1/whatsapp/phone_numbers?per_page=100")).data;
}

/** Sends Meta's message body from a number through the proxy. */
export async function send(phoneNumberId: string, body: Record<string, unknown>): Promise<void> {
  await call("POST", `/meta/whatsapp/v24.0/${phoneNumberId}/messages`, { messaging_product: "whatsapp", ...body });
}

export async function assign(conversationId: string, userId: string): Promise<void> {
  await call("POST", `/platform/v1/whatsapp/conversations/${conversationId}/assignments`, {
    conversation_assignment: { user_id: userId },
  });
}

export async function unassign(conversationId: string): Promise<void> {
  const r = await call<{ data: { id: string }[] }>(
    "GET",
    `/platform/v1/whatsapp/conversations/${conversationId}/assignments?active=true`,
  );
  for (const a of r.data) {
    await call("PATCH", `/platform/v1/whatsapp/conversations/${conversationId}/assignments/${a.id}`, {
      conversation_assignment: { active: false },
    });
  }
}

export async function setConversationStatus(id: string, status: "active" | "ended"): Promise<void> {
  await call("PATCH", `/platform/v1/whatsapp/conversations/${id}`, { whatsapp_conversation: { status } });
}

/** Uploads a file for a number through the proxy (as Meta's media upload); returns its id. */
export async function upload(phoneNumberId: string, file: File): Promise<string> {
  const form = new FormData();
  form.append("messaging_product", "whatsapp");
  form.append("type", file.type || "application/octet-stream");
  form.append("file", file, file.name);
  const r = await fetch(`/meta/whatsapp/v24.0/${phoneNumberId}/media`, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf },
    credentials: "same-origin",
    body: form,
  });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, errorText(body, r.status));
  return body.id as string;
}

/** The WhatsApp message type for a file's MIME type. */
export function mediaKind(mime: string): "image" | "video" | "audio" | "document" {
  if (mime === "image/jpeg" || mime === "image/png") return "image";
  if (mime.startsWith("video/")) return "video";
  if (mime.startsWith("audio/")) return "audio";
  return "document";
}

/** The logged-in user has read a conversation up to now. */
export async function markRead(conversationId: string): Promise<void> {
  await call("POST", `/platform/v1/whatsapp/conversations/${conversationId}/read`, {});
}
