// The realtime feed: a WebSocket (the dashboard's or an embed's) that reconnects with backoff.
// Frames name what changed; the inbox reads it again through the API.

export type Change = {
  type: "ready" | "message" | "status" | "conversation" | "assignment" | "resync";
  phone_number_id?: string | null;
  conversation_id?: string | null;
  wamid?: string | null;
};

/** Opens the feed; returns a function that closes it for good. */
export function subscribe(
  path: string,
  onChange: (c: Change) => void,
  onState?: (connected: boolean) => void,
): () => void {
  let socket: WebSocket | null = null;
  let closed = false;
  let delay = 500;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.onmessage = (e) => {
      try {
        const change = JSON.parse(e.data) as Change;
        if (change.type === "ready") {
          delay = 500;
          onState?.(true);
          // Whatever happened while disconnected is read again.
          onChange({ type: "resync" });
        } else {
          onChange(change);
        }
      } catch {
        /* not a change frame */
      }
    };
    socket.onclose = () => {
      onState?.(false);
      if (closed) return;
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 15_000);
    };
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    socket?.close();
  };
}
