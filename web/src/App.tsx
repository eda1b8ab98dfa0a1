// The dashboard: the login page until there is a session, then the inbox.

import { useEffect, useMemo, useState } from "react";
import * as api from "./api";
import type { Session } from "./api";
import { dashboard, embed, type EmbedSession } from "./backend";
import { Inbox } from "./Inbox";
import { Login } from "./Login";
import { Simulator } from "./Simulator";

/** The inbox inside another site, confined to the embed token in the path. */
function EmbeddedInbox({ token }: { token: string }) {
  const backend = useMemo(() => embed(token), [token]);
  const [info, setInfo] = useState<EmbedSession | null | undefined>(undefined);
  const [error, setError] = useState("");
  useEffect(() => {
    backend.session().then(
      (s) => {
        const wanted = new URLSearchParams(location.search).get("mode") ?? s.default_mode;
        const dark = wanted === "dark" || (wanted === "system" && matchMedia?.("(prefers-color-scheme: dark)").matches);
        document.documentElement.dataset.mode = dark ? "dark" : "light";
        setInfo(s);
      },
      (e) => {
        setError(e instanceof Error ? e.message : String(e));
        setInfo(null);
      },
    );
  }, [backend]);
  if (info === undefined) return <div className="placeholder muted">Loading…</div>;
  if (!info) return <div className="placeholder error" role="alert">{error}</div>;
  return <Inbox backend={backend} title={info.name} />;
}

export function App() {
  const embedToken = location.pathname.match(/^\/embed\/([^/]+)/)?.[1];
  if (embedToken) return <EmbeddedInbox token={decodeURIComponent(embedToken)} />;
  return <DashboardApp />;
}

function DashboardApp() {
  const [page, setPage] = useState(location.pathname === "/simulator" ? "simulator" : "inbox");
  useEffect(() => {
    const back = () => setPage(location.pathname === "/simulator" ? "simulator" : "inbox");
    addEventListener("popstate", back);
    return () => removeEventListener("popstate", back);
  }, []);
  const go = (path: string) => {
    history.pushState(null, "", path);
    setPage(path === "/simulator" ? "simulator" : "inbox");
  };
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  useEffect(() => {
    api.currentSession().then(setSession, () => setSession(null));
  }, []);
  if (session === undefined) return <div className="placeholder muted">Loading…</div>;
  if (!session) return <Login onLoggedIn={setSession} />;
  if (page === "simulator") return <Simulator onBack={() => go("/")} />;
  return (
    <Inbox
      backend={dashboard}
      session={session}
      onSimulator={() => go("/simulator")}
      onLogout={async () => {
        await api.logout().catch(() => undefined);
        setSession(null);
      }}
    />
  );
}
