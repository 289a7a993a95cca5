// dist/consentd-iab-stub.js: the few lines a page runs before any ad tag
// (inline, or a synchronous <script> first in <head>), so ad tags that call
// `__tcfapi` or `__gpp` before consentd-iab.iife.js has loaded are answered
// once it has: both functions queue the calls, answer ping ("stub"), and
// add the locator frames (__tcfapiLocator, __gppLocator) that ad tags in
// iframes look for to talk to the CMP by postMessage. When the SDK loads,
// the IAB libraries' CmpApi take the queues over.
//
// __tcfapi: the IAB's own stub (@iabtechlabtcf/stub). __gpp: the stub the
// GPP CMP API 1.1 specifies, written here (the IAB publishes no npm
// package of it).

import tcfStub from "@iabtechlabtcf/stub";

type Callback = (data: unknown, success: boolean) => void;
interface Listener {
  id: number;
  callback: Callback;
  parameter: unknown;
}
type GppStub = ((...args: unknown[]) => unknown) & { queue: unknown[][]; events: Listener[]; lastId: number };

tcfStub();

const w = window as unknown as { __gpp?: GppStub; frames: Record<string, unknown> };

if (typeof w.__gpp != "function") {
  const queue: unknown[][] = [];
  const events: Listener[] = [];
  const pingData = () => ({
    gppVersion: "1.1",
    cmpStatus: "stub",
    cmpDisplayStatus: "hidden",
    signalStatus: "not ready",
    supportedAPIs: [],
    cmpId: 0,
    sectionList: [],
    applicableSections: [],
    gppString: "",
    parsedSections: {},
  });
  const gpp = ((...args: unknown[]): unknown => {
    const [command, callback, parameter] = args as [string, Callback | undefined, unknown];
    // The CMP takes the queue and the listeners over: __gpp() and __gpp("events").
    if (!args.length || command == "queue") return queue;
    if (command == "events") return events;
    if (command == "ping") callback?.(pingData(), true);
    else if (command == "addEventListener") {
      const id = ++gpp.lastId;
      events.push({ id, callback: callback as Callback, parameter });
      callback?.({ eventName: "listenerRegistered", listenerId: id, data: true, pingData: pingData() }, true);
    } else if (command == "removeEventListener") {
      const i = events.findIndex((e) => e.id == parameter);
      if (i >= 0) events.splice(i, 1);
      callback?.({ eventName: "listenerRemoved", listenerId: parameter, data: i >= 0, pingData: pingData() }, true);
    } else queue.push(args); // hasSection, getSection, getField: answered by the CMP
  }) as GppStub;
  gpp.queue = queue;
  gpp.events = events;
  gpp.lastId = 0;
  w.__gpp = gpp;

  // Calls from frames: {__gppCall: {command, parameter, version, callId}}.
  addEventListener("message", (event) => {
    const text = typeof event.data == "string";
    let data: { __gppCall?: { command: string; parameter?: unknown; version?: string; callId: unknown } } | null = null;
    try {
      data = text ? JSON.parse(event.data) : event.data;
    } catch {
      // not ours
    }
    const call = data && typeof data == "object" ? data.__gppCall : null;
    if (!call) return;
    const source = event.source as Window | null;
    // window.__gpp, not gpp: the CMP's, once it has taken over.
    w.__gpp?.(
      call.command,
      (returnValue: unknown, success: boolean) => {
        const answer = { __gppReturn: { returnValue, success, callId: call.callId } };
        source?.postMessage(text ? JSON.stringify(answer) : answer, "*");
      },
      call.parameter ?? null,
      call.version || "1.1",
    );
  });

  // The frame ad tags in iframes look for. hidden: no inline style (strict CSP).
  const frame = () => {
    if (w.frames.__gppLocator) return;
    if (!document.body) {
      setTimeout(frame, 5);
      return;
    }
    const f = document.createElement("iframe");
    f.hidden = true;
    f.name = "__gppLocator";
    document.body.appendChild(f);
  };
  frame();
}
