/// <reference lib="dom" />
/**
 * @file Headless Chromium for the browser test, driven over the Chrome DevTools Protocol: one WebSocket to
 * the browser, pages as flattened target sessions, no driver package (so nothing outside the browser test
 * needs one installed). Page helpers wait for selectors, fill forms and evaluate functions in the page;
 * `inputLatency` sends a real input event and times its acknowledgement by the page's main thread; the
 * page's Web Workers are attached as sessions of their own (`workers`), which `hold` pauses and resumes.
 */

/** A function serialised into the page (it sees none of the test's variables). */
type PageFunction<A, T> = (arg: A) => T | Promise<T>;

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

/** A Chromium process with its DevTools connection. */
export class Chromium {
  #next = 0;
  readonly #pending = new Map<number, { resolve(r: Record<string, unknown>): void; reject(e: Error): void }>();
  readonly #pages = new Map<string, Page>();
  readonly #waiters: { sessionId: string; method: string; resolve(): void }[] = [];

  private constructor(readonly process: Deno.ChildProcess, readonly socket: WebSocket, readonly profile: string) {
    socket.onmessage = (e) => this.#receive(JSON.parse(e.data as string) as Message);
    socket.onclose = () => {
      for (const p of this.#pending.values()) p.reject(new Error("Chromium closed the DevTools connection"));
      this.#pending.clear();
    };
  }

  /** Starts `executable` headless with its own profile folder and connects to it. */
  static async launch(executable: string, args: readonly string[], profile: string): Promise<Chromium> {
    const process = new Deno.Command(executable, {
      args: [...args, "--remote-debugging-port=0", `--user-data-dir=${profile}`, "about:blank"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const url = await devtoolsUrl(process.stderr);
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = (e) => reject(new Error(`cannot connect to Chromium at ${url}: ${(e as ErrorEvent).message}`));
    });
    return new Chromium(process, socket, profile);
  }

  /** Sends one command (to a page session when given) and returns its result. */
  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  /** Resolves at the next `method` event of a session. */
  nextEvent(sessionId: string, method: string): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ sessionId, method, resolve }));
  }

  /**
   * A new tab, with page and runtime events on and its workers attached as they start; `init` runs before
   * the page's own scripts on every load.
   */
  async newPage(init?: () => void): Promise<Page> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, sessionId as string);
    this.#pages.set(sessionId as string, page);
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.send("Target.setAutoAttach", { autoAttach: true, waitForDebuggerOnStart: false, flatten: true });
    if (init) await page.send("Page.addScriptToEvaluateOnNewDocument", { source: `(${init})()` });
    return page;
  }

  /**
   * Closes the browser and waits for its process and its helpers (zygotes, GPU, utility) to end: helpers
   * outlive a killed browser by a second or so, and one can still write into the profile as it is removed.
   */
  async close(): Promise<void> {
    await Promise.race([this.send("Browser.close").catch(() => {}), delay(5000)]);
    this.socket.close();
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.process.status;
    for (const until = Date.now() + 5000; Date.now() < until; await delay(20)) {
      const left = processesWith(`--user-data-dir=${this.profile}`);
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  }

  #receive(m: Message): void {
    if (m.id !== undefined) {
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result ?? {});
    } else if (m.method && m.sessionId) {
      this.#pages.get(m.sessionId)?.event(m.method, m.params ?? {});
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i]!;
        if (w.sessionId === m.sessionId && w.method === m.method) this.#waiters.splice(i, 1), w.resolve();
      }
    }
  }
}

/** Reads Chromium's stderr until it prints the DevTools WebSocket address (30 s at most). */
async function devtoolsUrl(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.getReader(), decoder = new TextDecoder();
  let text = "";
  const timeout = setTimeout(() => reader.cancel(), 30_000);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`Chromium did not start its DevTools server:\n${text.slice(-2000)}`);
      text += decoder.decode(value, { stream: true });
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (m) {
        // Keep draining stderr so that the browser never blocks on a full pipe.
        (async () => {
          while (!(await reader.read()).done);
        })().catch(() => {});
        return m[1]!;
      }
    }
  } finally {
    clearTimeout(timeout);
  }
}

/** The running processes (not zombies) whose command line has `arg`, read from /proc (none without it). */
function processesWith(arg: string): number[] {
  const found: number[] = [];
  try {
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`); // "pid (comm) state …"
        if (stat[stat.lastIndexOf(")") + 2] === "Z") continue;
        if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0").includes(arg)) found.push(Number(e.name));
      } catch {
        // ended while listed
      }
    }
  } catch {
    // no /proc
  }
  return found;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One tab. */
export class Page {
  readonly #listeners: { console: ((text: string) => void)[]; pageerror: ((text: string) => void)[] } = {
    console: [],
    pageerror: [],
  };
  #loaded?: () => void;
  /** The page's workers attached so far: their DevTools sessions and script URLs. */
  readonly workers: { sessionId: string; url: string }[] = [];

  constructor(readonly browser: Chromium, readonly sessionId: string) {}

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Console messages (`console.<type>: text`) and uncaught page errors. */
  on(event: "console" | "pageerror", listener: (text: string) => void): void {
    this.#listeners[event].push(listener);
  }

  /** @internal Dispatches a DevTools event of this page's session. */
  event(method: string, params: Record<string, unknown>): void {
    if (method === "Page.loadEventFired") this.#loaded?.();
    if (method === "Target.attachedToTarget") {
      const info = params.targetInfo as { type: string; url: string };
      if (info.type === "worker") this.workers.push({ sessionId: params.sessionId as string, url: info.url });
    }
    if (method === "Runtime.consoleAPICalled") {
      const args = (params.args as { value?: unknown; description?: string }[])
        .map((a) => a.value !== undefined ? String(a.value) : a.description ?? "").join(" ");
      for (const l of this.#listeners.console) l(`console.${params.type}: ${args}`);
    }
    if (method === "Runtime.exceptionThrown") {
      const d = params.exceptionDetails as { text: string; exception?: { description?: string } };
      for (const l of this.#listeners.pageerror) l(d.exception?.description ?? d.text);
    }
  }

  /** Navigates and waits for the load event. */
  async goto(url: string): Promise<void> {
    const loaded = new Promise<void>((r) => this.#loaded = r);
    const { errorText } = await this.send("Page.navigate", { url });
    if (errorText) throw new Error(`cannot open ${url}: ${errorText}`);
    await loaded;
  }

  /** Runs `fn(arg)` in the page and returns its (JSON-serialisable) result; page exceptions are thrown here. */
  async evaluate<T, A = undefined>(fn: PageFunction<A, T>, arg?: A): Promise<T> {
    const r = await this.send("Runtime.evaluate", {
      expression: `(${fn})(${arg === undefined ? "" : JSON.stringify(arg)})`,
      awaitPromise: true,
      returnByValue: true,
    });
    const error = r.exceptionDetails as { text: string; exception?: { description?: string } } | undefined;
    if (error) throw new Error(`in the page: ${error.exception?.description ?? error.text}`);
    return (r.result as { value: T }).value;
  }

  /** Waits until an element matches `selector`. */
  async waitForSelector(selector: string, timeout = 30_000): Promise<void> {
    const t0 = Date.now();
    while (!await this.evaluate((s) => document.querySelector(s) !== null, selector)) {
      if (Date.now() - t0 > timeout) throw new Error(`no "${selector}" after ${timeout / 1000} s`);
      await delay(100);
    }
  }

  /** The value of an input or select. */
  inputValue(selector: string): Promise<string> {
    return this.evaluate((s) => (document.querySelector(s) as HTMLInputElement).value, selector);
  }

  /** Sets an input's or select's value and fires `input` and `change`, as a user's edit does. */
  async fill(selector: string, value: string): Promise<void> {
    await this.evaluate(([s, v]) => {
      const e = document.querySelector(s) as HTMLInputElement | HTMLSelectElement | null;
      if (!e) throw new Error(`no ${s}`);
      e.value = v;
      if (e.value !== v) throw new Error(`${s} has no option or value ${JSON.stringify(v)}`);
      e.dispatchEvent(new Event("input", { bubbles: true }));
      e.dispatchEvent(new Event("change", { bubbles: true }));
    }, [selector, value]);
  }

  /** Clicks the element's centre with the mouse. */
  async click(selector: string): Promise<void> {
    const box = await this.evaluate((s) => {
      const e = document.querySelector(s);
      if (!e) throw new Error(`no ${s}`);
      e.scrollIntoView({ block: "center" });
      const r = e.getBoundingClientRect();
      return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
    }, selector);
    for (const type of ["mousePressed", "mouseReleased"]) {
      await this.send("Input.dispatchMouseEvent", { type, ...box, button: "left", clickCount: 1 });
    }
  }

  /** The text content of the element matching `selector` ("" when none). */
  textContent(selector: string): Promise<string> {
    return this.evaluate((s) => document.querySelector(s)?.textContent ?? "", selector);
  }

  /**
   * Moves the mouse over the page and returns the milliseconds until the page acknowledged it: the renderer
   * answers input on its main thread, so this is how long the page makes a user wait while it is busy.
   */
  async inputLatency(x = 5, y = 5): Promise<number> {
    const t0 = performance.now();
    await this.send("Input.dispatchMouseEvent", { type: "mouseMoved", x, y });
    return performance.now() - t0;
  }

  /**
   * Pauses a worker (in the debugger, at the next script it runs: at once when busy, or when its next message
   * arrives when idle) and returns a function that waits until it has paused and one that resumes it.
   */
  async hold(workerSession: string): Promise<{ paused: Promise<void>; resume(): Promise<void> }> {
    await this.browser.send("Debugger.enable", {}, workerSession);
    const paused = this.browser.nextEvent(workerSession, "Debugger.paused");
    await this.browser.send("Debugger.pause", {}, workerSession);
    return {
      paused,
      resume: async () => {
        await this.browser.send("Debugger.resume", {}, workerSession);
        await this.browser.send("Debugger.disable", {}, workerSession);
      },
    };
  }

  /** A PNG of the whole page. */
  async screenshot(path: string): Promise<void> {
    const { cssContentSize } = await this.send("Page.getLayoutMetrics") as {
      cssContentSize: { width: number; height: number };
    };
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width: cssContentSize.width, height: cssContentSize.height, scale: 1 },
    });
    await Deno.writeFile(path, Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0)));
  }
}
