// The privacy console: sign in with an API key, then the screens the key's
// scopes allow. Served by consentd at /console/ (server/console).

import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { call, type Caller, storedKey, storeKey, ApiError } from "./api";
import { html, Message, type Msg, errorText } from "./common";
import { grants, missing, type Grants, type Need } from "./scopes";
import type { Policy } from "../../../sdk-js/src/types";
import { PersonScreen } from "./person";
import { AnalyticsScreen } from "./analytics";
import { ConsumersScreen } from "./consumers";
import { PolicyScreen } from "./policy";

export interface Session {
  key: string;
  caller: Caller;
  grants: Grants;
  policy: Policy | null;
}

const SCREENS: { id: string; title: string; needs: Need[] }[] = [
  // The person screen opens with any of the scopes its actions need.
  { id: "person", title: "A person", needs: ["lookup", "history", "minor"] },
  { id: "analytics", title: "Analytics", needs: ["stats"] },
  { id: "consumers", title: "Feed consumers", needs: ["consumers"] },
  { id: "policy", title: "Policy", needs: ["policy"] },
];

export function screenMissing(g: Grants, needs: Need[]): string | null {
  const all = needs.map((n) => missing(g, n));
  return all.some((m) => m === null) ? null : all.join("; ");
}

function SignIn({ onSignedIn, initialMsg }: { onSignedIn: (s: Session) => void; initialMsg: Msg }) {
  const [key, setKey] = useState("");
  const [msg, setMsg] = useState<Msg>(initialMsg);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    // An empty key is sent as an empty bearer: on a consentd in demo mode
    // (make run) that counts as no credentials and signs in as the demo.
    const k = key.trim();
    setBusy(true);
    setMsg({ kind: "info", text: "Checking the key…" });
    try {
      const s = await signIn(k);
      setKey("");
      onSignedIn(s);
    } catch (err) {
      storeKey(null);
      const refused = err instanceof ApiError && err.status === 401;
      setMsg({ kind: "error", text: refused && !k ? "Type an API key first." : refused ? "That key was not accepted. Check it and try again; nothing was stored." : errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>consentd privacy console</h1>
    <form class="card" onSubmit=${submit} aria-labelledby="signin-h">
      <h2 id="signin-h">Sign in</h2>
      <p>Sign in with an API key from consentd's API keys file (on a consentd in demo mode, leave it empty). The key is kept in this tab only (sessionStorage) until you sign out or close the tab; it is sent with every call to this consentd's API and nowhere else.</p>
      <div class="field">
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" spellcheck="false" value=${key} onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)} />
      </div>
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      <${Message} msg=${msg} id="signin-msg" />
    </form>
  </main>`;
}

/** Asks the API who the key is; stores it only when accepted as an API key. */
async function signIn(key: string): Promise<Session> {
  const caller = await call<Caller>(key, "GET", "/v1/caller");
  if (caller.kind === "CALLER_KIND_VISITOR") throw new Error("That is a visitor's subject token, not an API key: the console needs an API key.");
  if (key) storeKey(key); // demo mode keeps nothing: a reload asks again
  let policy: Policy | null = null;
  try {
    policy = (await call<{ policy: Policy }>(key, "GET", "/v1/policy")).policy;
  } catch {
    // shown by the screens that need it
  }
  return { key, caller, grants: grants(caller.kind, caller.scopes || []), policy };
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(!!storedKey());
  const [screen, setScreen] = useState("person");
  const [signInMsg, setSignInMsg] = useState<Msg>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const start = (s: Session) => {
    setSignInMsg(null);
    setSession(s);
    // The first screen this key may open (the policy is open to every key).
    setScreen((SCREENS.find((x) => !screenMissing(s.grants, x.needs)) || SCREENS[SCREENS.length - 1]).id);
  };

  useEffect(() => {
    const k = storedKey();
    if (!k) return;
    signIn(k)
      .then(start)
      .catch((e) => {
        storeKey(null);
        setSignInMsg({ kind: "error", text: "Signed out: " + errorText(e) });
      })
      .finally(() => setRestoring(false));
  }, []);

  if (restoring) return html`<main id="main"><p role="status">Signing in…</p></main>`;
  if (!session) return html`<${SignIn} onSignedIn=${start} initialMsg=${signInMsg} />`;

  const signOut = () => {
    storeKey(null);
    setSession(null);
    setSignInMsg({ kind: "info", text: "Signed out. The key was removed from this tab." });
  };
  const go = (id: string) => {
    setScreen(id);
    requestAnimationFrame(() => heading.current?.focus());
  };
  const current = SCREENS.find((s) => s.id === screen) || SCREENS[0];
  const blocked = screenMissing(session.grants, current.needs);
  const c = session.caller;
  const who = c.kind === "CALLER_KIND_DEMO" ? "demo mode (no key needed; every call allowed)" : c.name;
  return html`<div class="shell">
    <header class="top">
      <p class="brand">consentd privacy console</p>
      <div class="who" id="who">
        <span>Signed in as <strong id="key-name">${who}</strong></span>
        <span class="scopes" id="key-scopes">scopes: ${(c.scopes || []).join(", ") || "none"}</span>
        <button type="button" onClick=${signOut} id="sign-out">Sign out</button>
      </div>
    </header>
    <nav aria-label="Screens" class="tabs">
      <ul>
        ${SCREENS.map((s) => {
          const m = screenMissing(session.grants, s.needs);
          return html`<li><button type="button" id=${"nav-" + s.id} aria-current=${s.id === screen ? "page" : undefined}
              disabled=${!!m} aria-describedby=${m ? "nav-" + s.id + "-why" : undefined} onClick=${() => go(s.id)}>${s.title}</button>
            ${m && html`<span class="why" id=${"nav-" + s.id + "-why"}>${m}</span>`}</li>`;
        })}
      </ul>
    </nav>
    <main id="main">
      <h2 tabindex="-1" ref=${heading} id="screen-title">${current.title}</h2>
      ${blocked
        ? html`<p class="needs" role="status">This screen ${blocked}.</p>`
        : screen === "person"
          ? html`<${PersonScreen} session=${session} />`
          : screen === "analytics"
            ? html`<${AnalyticsScreen} session=${session} />`
            : screen === "consumers"
              ? html`<${ConsumersScreen} session=${session} />`
              : html`<${PolicyScreen} session=${session} />`}
    </main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app") as HTMLElement);
