// The dashboard: the login page until there is a session, then the inbox.

import { useEffect, useState } from "react";
import * as api from "./api";
import type { Session } from "./api";
import { Inbox } from "./Inbox";
import { Login } from "./Login";

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  useEffect(() => {
    api.currentSession().then(setSession, () => setSession(null));
  }, []);
  if (session === undefined) return <div className="placeholder muted">Loading…</div>;
  if (!session) return <Login onLoggedIn={setSession} />;
  return (
    <Inbox
      session={session}
      onLogout={async () => {
        await api.logout().catch(() => undefined);
        setSession(null);
      }}
    />
  );
}
