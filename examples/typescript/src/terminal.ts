// An example posfleet terminal in TypeScript on Node, written from the
// .proto files alone (loaded at run time by @grpc/proto-loader).
//
// It plays a terminal's first day against a posfleet server: register with
// an enrollment code, verify the signed merchant identity against the server
// signing key whose fingerprint was pinned out of band (following the key
// set's endorsements across rotations; see identity.ts), heartbeat, take a
// config push (apply and acknowledge it) and remote commands (a credential
// rotation among them, when the server asks for one), a sale and its
// replay, two sales whose answers are lost (retried with the same
// request_id, then reversed with reason TIMEOUT, then arriving late), a
// refund, the batch close, and a last check of the identity (signed by a
// newer key if the server rotated its key meanwhile). Every step checks what
// the server answered; the first surprise ends the run with exit status 1.
// The last line on stdout is a JSON summary.
//
// Settings come from flags (--target=ADDR) or their POSFLEET_* environment
// twins (flags win); see usage() below.

import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";
import { getProtoPath } from "google-proto-files";
import * as identity from "./identity";

// Deadlines per call class, in milliseconds. A payment waits for a durable
// commit, so it gets more than a heartbeat.
const DEADLINE_MS = 10_000;
const PAYMENT_DEADLINE_MS = 15_000;
// Codes after which a money request may or may not have been decided.
const UNKNOWN_OUTCOME = new Set<grpc.status>([
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNAVAILABLE,
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
  grpc.status.CANCELLED,
]);

/** A check of the server's answer failed; the run ends with status 1. */
class Failure extends Error {}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Failure(what);
}

function log(msg: string, fields: Record<string, unknown> = {}): void {
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${v}`);
  process.stderr.write(`terminal: ${[msg, ...parts].join(" ")}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- protocol loading ---------------------------------------------------

const protoRoot = path.resolve(__dirname, "../../../proto");
const googleRoot = getProtoPath("..");

const definition = protoLoader.loadSync(
  ["posfleet/v1/terminal.proto", "posfleet/v1/payment.proto"],
  { keepCase: true, longs: Number, enums: String, defaults: true, includeDirs: [protoRoot] },
);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const v1 = (grpc.loadPackageDefinition(definition) as any).posfleet.v1;

// google.rpc.Status and its details, from the google-proto-files package.
const rpcTypes = new protobuf.Root();
rpcTypes.resolvePath = (_origin, target) => path.join(googleRoot, target);
rpcTypes.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const StatusType = rpcTypes.lookupType("google.rpc.Status");
const ErrorInfoType = rpcTypes.lookupType("google.rpc.ErrorInfo");
const RetryInfoType = rpcTypes.lookupType("google.rpc.RetryInfo");

interface Details {
  reason?: string;
  retryDelayMs?: number;
}

/** Reads ErrorInfo's reason and RetryInfo's delay from a call error. */
function errorDetails(err: grpc.ServiceError): Details {
  const out: Details = {};
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (!raw || typeof raw === "string") return out;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const st = StatusType.toObject(StatusType.decode(raw)) as any;
  for (const any of st.details ?? []) {
    if (any.type_url === "type.googleapis.com/google.rpc.ErrorInfo") {
      out.reason = (ErrorInfoType.decode(any.value) as unknown as { reason: string }).reason;
    } else if (any.type_url === "type.googleapis.com/google.rpc.RetryInfo") {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const d = (RetryInfoType.toObject(RetryInfoType.decode(any.value), { longs: Number }) as any).retry_delay;
      out.retryDelayMs = (d?.seconds ?? 0) * 1000 + (d?.nanos ?? 0) / 1e6;
    }
  }
  return out;
}

/** Waits before retry attempt+1: RetryInfo's delay when the server gave
 * one, else exponential backoff with full jitter. */
async function backoff(attempt: number, err?: grpc.ServiceError): Promise<void> {
  const delay = err ? errorDetails(err).retryDelayMs : undefined;
  await sleep(delay ?? Math.random() * Math.min(2000, 100 * 2 ** attempt));
}

/** A call whose request or answer the simulated link dropped. */
function simulatedLoss(): grpc.ServiceError {
  return Object.assign(new Error("simulated: no answer within the deadline"), {
    code: grpc.status.DEADLINE_EXCEEDED,
    details: "simulated: no answer within the deadline",
    metadata: new grpc.Metadata(),
  });
}

// ---- settings -------------------------------------------------------------

interface Args {
  target: string;
  tlsCA: string;
  serial: string;
  enrollmentCode: string;
  merchantId: string;
  currency: string;
  signingKeyFingerprint: string;
  configWaitMs: number;
  simulateLoss: boolean;
}

function usage(): string {
  return `usage: node dist/terminal.js [--flag=value ...]
  --target           server address (POSFLEET_TARGET, default 127.0.0.1:7400)
  --tls-ca           CA certificate file; plaintext when empty (POSFLEET_TLS_CA)
  --serial           device serial number (POSFLEET_SERIAL)
  --enrollment-code  enrollment code from provisioning (POSFLEET_ENROLLMENT_CODE)
  --merchant-id      merchant the terminal was sold to (POSFLEET_MERCHANT_ID)
  --currency         currency to charge in (POSFLEET_CURRENCY, default NZD)
  --signing-key-fingerprint
                     fingerprint of the server's identity signing key, 64 hex digits, as
                     'posfleet admin terminals provision' prints it (POSFLEET_SIGNING_KEY_FINGERPRINT)
  --pinned-key       instead of the fingerprint: the signing key itself, 64 hex digits, which
                     pins its fingerprint (POSFLEET_PINNED_KEY)
  --config-wait      seconds to wait for a config push (POSFLEET_CONFIG_WAIT, default 60)
  --simulate-loss    true: simulate lost requests and answers itself; false under posfleet
                     conformance, which plays them (POSFLEET_SIMULATE_LOSS, default true)`;
}

function parseArgs(argv: string[]): Args {
  const flags = new Map<string, string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(a);
    if (!m) throw new Failure(`bad argument ${JSON.stringify(a)}\n${usage()}`);
    flags.set(m[1], m[2]);
  }
  const get = (flag: string, env: string, def = "") => flags.get(flag) ?? process.env[env] ?? def;
  const args: Args = {
    target: get("target", "POSFLEET_TARGET", "127.0.0.1:7400"),
    tlsCA: get("tls-ca", "POSFLEET_TLS_CA"),
    serial: get("serial", "POSFLEET_SERIAL"),
    enrollmentCode: get("enrollment-code", "POSFLEET_ENROLLMENT_CODE"),
    merchantId: get("merchant-id", "POSFLEET_MERCHANT_ID"),
    currency: get("currency", "POSFLEET_CURRENCY", "NZD"),
    signingKeyFingerprint: pinnedFingerprint(get("signing-key-fingerprint", "POSFLEET_SIGNING_KEY_FINGERPRINT"), get("pinned-key", "POSFLEET_PINNED_KEY")),
    configWaitMs: Number(get("config-wait", "POSFLEET_CONFIG_WAIT", "60")) * 1000,
    simulateLoss: get("simulate-loss", "POSFLEET_SIMULATE_LOSS", "true") !== "false",
  };
  for (const [name, v] of [["serial", args.serial], ["enrollment-code", args.enrollmentCode], ["merchant-id", args.merchantId]]) {
    if (!v) throw new Failure(`--${name} is required\n${usage()}`);
  }
  return args;
}

/** The fingerprint to pin: --signing-key-fingerprint, or that of
 * --pinned-key; both given must name the same key. */
function pinnedFingerprint(fp: string, key: string): string {
  fp = fp.trim().toLowerCase();
  if (fp && !/^[0-9a-f]{64}$/.test(fp)) throw new Failure(`--signing-key-fingerprint is not 64 hex digits\n${usage()}`);
  if (key) {
    if (!/^[0-9a-fA-F]{64}$/.test(key)) throw new Failure(`--pinned-key is not a 32-byte Ed25519 key in hex\n${usage()}`);
    const keyFp = identity.fingerprint(Buffer.from(key, "hex"));
    if (fp && fp !== keyFp) throw new Failure(`--pinned-key and --signing-key-fingerprint name different keys\n${usage()}`);
    fp = keyFp;
  }
  if (!fp) throw new Failure(`--signing-key-fingerprint is required\n${usage()}`);
  return fp;
}

// ---- the terminal -------------------------------------------------------

const money = (minor: number, currency: string) => ({ minor_units: minor, currency });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = any;

class Terminal {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly terminal: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly payment: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly identitySvc: any;
  private readonly trust: identity.PinnedTrust;
  private readonly verifiedKeyIds: string[] = [];
  private credential = "";
  configVersion = 0;
  readonly ackedCommands = new Set<string>();
  /** Config versions this terminal refused to run. */
  readonly rejected = new Set<number>();
  /** Outcome of each ROTATE_CREDENTIAL command carried out, by command ID. */
  private readonly rotatedFor = new Map<string, { ok: boolean; detail: string }>();
  readonly summary: Record<string, unknown> = {};

  constructor(private readonly args: Args) {
    const creds = args.tlsCA
      ? grpc.credentials.createSsl(fs.readFileSync(args.tlsCA))
      : grpc.credentials.createInsecure();
    this.terminal = new v1.TerminalService(args.target, creds);
    this.payment = new v1.PaymentService(this.terminal.getChannel().getTarget(), creds, {
      channelOverride: this.terminal.getChannel(),
    });
    this.identitySvc = identity.identityClient(protoRoot, this.terminal.getChannel(), creds);
    this.trust = new identity.PinnedTrust(args.signingKeyFingerprint);
  }

  close(): void {
    this.terminal.close();
  }

  private md(auth = true): grpc.Metadata {
    const md = new grpc.Metadata();
    if (auth) md.set("authorization", `Bearer ${this.credential}`);
    return md;
  }

  /** One unary call with a deadline. */
  private once(client: Msg, method: string, req: Msg, deadlineMs: number, auth = true): Promise<Msg> {
    return new Promise((resolve, reject) => {
      client[method](req, this.md(auth), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, resp: Msg) =>
        err ? reject(err) : resolve(resp),
      );
    });
  }

  /** A unary call retried on the given codes (and on rate limits, after
   * their RetryInfo delay) with backoff. */
  async call(
    client: Msg,
    method: string,
    req: Msg,
    opts: { deadlineMs?: number; retry?: Set<grpc.status>; attempts?: number; auth?: boolean } = {},
  ): Promise<Msg> {
    const { deadlineMs = DEADLINE_MS, retry = new Set([grpc.status.UNAVAILABLE]), attempts = 5, auth = true } = opts;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(client, method, req, deadlineMs, auth);
      } catch (e) {
        const err = e as grpc.ServiceError;
        const limited = err.code === grpc.status.RESOURCE_EXHAUSTED;
        if (attempt + 1 >= attempts || (!retry.has(err.code) && !limited)) throw err;
        await backoff(attempt, err);
      }
    }
  }

  async register(): Promise<void> {
    const resp = await this.call(this.terminal, "Register", {
      serial_number: this.args.serial,
      enrollment_code: this.args.enrollmentCode,
      device: { model: "TS-EXAMPLE", manufacturer: "posfleet examples", firmware_version: "1.0.0", app_version: "ts-1.0.0" },
    }, { auth: false });
    this.credential = resp.credential;
    this.configVersion = resp.config?.version ?? 0;
    await this.checkIdentity(resp.identity);
    check(resp.identity.terminal_id === resp.terminal_id, "identity names another terminal");
    log("registered", { terminal_id: resp.terminal_id, config_version: this.configVersion });
    this.summary.terminal_id = resp.terminal_id;
  }

  async verifyMerchant(): Promise<void> {
    const resp = await this.call(this.identitySvc, "VerifyMerchant", { claimed_merchant_id: this.args.merchantId });
    await this.checkIdentity(resp.identity);
    check(resp.claim_checked && resp.matches, `server says this terminal is not bound to merchant ${this.args.merchantId}`);
    check(resp.identity.merchant_id === this.args.merchantId, "identity names another merchant");
    log("identity verified", { merchant_id: resp.identity.merchant_id, key_id: resp.identity.key_id });
    this.summary.identity_key_id = resp.identity.key_id;
  }

  /** Believes an identity only once it verifies against the keys the pinned
   * fingerprint leads to. An identity naming a key not trusted yet (the
   * server rotated its key) fetches the key set again: the new key is
   * trusted only if a trusted key endorsed it. */
  async checkIdentity(id: identity.MerchantIdentity): Promise<void> {
    let key: identity.SigningKey;
    try {
      if (!this.trust.knows(id.key_id)) {
        const resp = await this.call(this.identitySvc, "GetSigningKeys", {});
        this.trust.update(resp.keys);
        log("signing keys trusted", { pinned: this.trust.pinned.slice(0, 16), trusted: [...this.trust.keys.keys()].join(",") });
      }
      key = this.trust.verify(id);
    } catch (e) {
      if (e instanceof identity.Refused) throw new Failure(`identity refused (${e.reason}): ${e.message}`);
      throw e;
    }
    check(id.currency === this.args.currency, `identity says merchant charges in ${id.currency}, terminal set to ${this.args.currency}`);
    if (!this.verifiedKeyIds.includes(key.key_id)) this.verifiedKeyIds.push(key.key_id);
    this.summary.identity_key_ids = this.verifiedKeyIds;
    this.summary.trusted_key_ids = [...this.trust.keys.keys()].sort();
  }

  async heartbeat(): Promise<Msg> {
    const resp = await this.call(this.terminal, "Heartbeat", {
      status: {
        firmware_version: "1.0.0",
        app_version: "ts-1.0.0",
        config_version: this.configVersion,
        battery_percent: 91,
        paper: "PAPER_STATUS_OK",
        network: "NETWORK_TYPE_ETHERNET",
        uptime: { seconds: Math.floor(process.uptime()) },
      },
    });
    for (const cmd of resp.commands) await this.handleCommand(cmd);
    log("heartbeat", { config_version: resp.config_version, commands: resp.commands.length });
    return resp;
  }

  /** Carries out a remote command once, however often it is delivered. */
  async handleCommand(cmd: Msg): Promise<void> {
    if (this.ackedCommands.has(cmd.command_id)) return;
    this.ackedCommands.add(cmd.command_id);
    let ok = true;
    let detail = cmd.type === "COMMAND_TYPE_REBOOT" ? "reboot simulated" : "done";
    if (cmd.type === "COMMAND_TYPE_ROTATE_CREDENTIAL") {
      // Once per command: a repeat delivery is acknowledged again, not
      // carried out again.
      let out = this.rotatedFor.get(cmd.command_id);
      if (!out) {
        out = await this.rotateCredential();
        this.rotatedFor.set(cmd.command_id, out);
      }
      ({ ok, detail } = out);
    } else if (!["COMMAND_TYPE_REBOOT", "COMMAND_TYPE_UPLOAD_LOGS", "COMMAND_TYPE_RESYNC_CONFIG", "COMMAND_TYPE_LOCK"].includes(cmd.type)) {
      ok = false;
      detail = `unknown command type ${cmd.type}`;
    }
    // Sent with the new credential after a rotation: its first use.
    await this.call(this.terminal, "AckCommand", {
      command_id: cmd.command_id,
      result: ok ? "COMMAND_RESULT_SUCCEEDED" : "COMMAND_RESULT_FAILED",
      detail,
    });
    log("command acknowledged", { command_id: cmd.command_id, type: cmd.type });
  }

  /** Waits on WatchConfig for a config newer than the one held, applies and
   * acknowledges it; reconnects with backoff, resuming from the version
   * held, when the stream ends. */
  async watchConfig(): Promise<void> {
    const until = Date.now() + this.args.configWaitMs;
    for (let attempt = 0; Date.now() < until; attempt++) {
      const outcome = await new Promise<"applied" | "ended" | "deadline" | "rotated">((resolve, reject) => {
        const openedWith = this.credential;
        const stream = this.terminal.WatchConfig({ known_version: this.configVersion }, this.md(), { deadline: until });
        let work = Promise.resolve();
        stream.on("data", (msg: Msg) => {
          // Handle messages one at a time, in order.
          work = work.then(async () => {
            for (const cmd of msg.commands) await this.handleCommand(cmd);
            if (this.credential !== openedWith) {
              // Rotated on a command: the stream carries the old
              // credential; reopen it with the new one.
              stream.cancel();
              return resolve("rotated");
            }
            if (msg.version > this.configVersion && !this.rejected.has(msg.version) && await this.applyConfig(msg)) {
              stream.cancel();
              resolve("applied");
            }
          }).catch(reject);
        });
        stream.on("error", (err: grpc.ServiceError) => {
          if (err.code === grpc.status.CANCELLED) return; // our own cancel after applying
          if (err.code === grpc.status.UNAUTHENTICATED && this.credential !== openedWith) {
            // The credential the stream was opened with was replaced by a
            // rotation: reopen it with the new one.
            log("watch ended with the old credential, reopening with the new one");
            return resolve("ended");
          }
          if (err.code === grpc.status.DEADLINE_EXCEEDED) return resolve("deadline");
          if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.RESOURCE_EXHAUSTED) {
            log("watch ended, reconnecting", { code: grpc.status[err.code] });
            return resolve("ended");
          }
          reject(err);
        });
        stream.on("end", () => resolve("ended"));
      });
      if (outcome === "applied") return;
      if (outcome === "deadline") break;
      if (outcome === "rotated") continue;
      await backoff(attempt);
    }
    throw new Failure(`no config newer than version ${this.configVersion} within ${this.args.configWaitMs / 1000}s`);
  }

  /** Rotates the credential on the server's ROTATE_CREDENTIAL command:
   * RotateCredential, repeated with the current credential while its
   * answer is lost (an unused new credential from a lost answer stops
   * working); the new one is stored, then used. Its first use (the
   * command's acknowledgement) revokes the old one and ends the streams
   * opened with it. Returns whether it rotated, and the detail for the
   * acknowledgement. */
  async rotateCredential(): Promise<{ ok: boolean; detail: string }> {
    let resp: Msg;
    try {
      resp = await this.call(this.terminal, "RotateCredential", {});
    } catch (err) {
      const code = (err as grpc.ServiceError).code;
      log("credential rotation failed", { code: grpc.status[code] });
      return { ok: false, detail: `RotateCredential failed: ${grpc.status[code]}` };
    }
    // A real terminal stores the new credential durably here, before it
    // uses it; if it cannot, it keeps the old one (still valid) and
    // acknowledges the command FAILED.
    this.credential = resp.credential;
    log("credential rotated");
    return { ok: true, detail: "credential rotated" };
  }

  /** Applies a pushed config and acknowledges it APPLIED, or, when it
   * cannot run it, REJECTED with the reason, keeping the config it had;
   * returns whether it applied it. */
  async applyConfig(msg: Msg): Promise<boolean> {
    const s = msg.settings;
    // A terminal refuses what it cannot run: this one needs at least one
    // entry mode, and a heartbeat interval within the protocol's 5 s to 1 h.
    const hb = s?.heartbeat_interval ? Number(s.heartbeat_interval.seconds) + s.heartbeat_interval.nanos / 1e9 : undefined;
    const why = !s?.accepted_entry_modes?.length ? "no accepted entry modes"
      : hb !== undefined && (hb < 5 || hb > 3600) ? `heartbeat_interval ${hb}s is outside 5s-1h` : "";
    if (why) {
      await this.call(this.terminal, "AckConfig", { version: msg.version, result: "CONFIG_APPLY_RESULT_REJECTED", detail: why });
      this.rejected.add(msg.version);
      log("config rejected", { version: msg.version, why, running: this.configVersion });
      return false;
    }
    this.configVersion = msg.version;
    await this.call(this.terminal, "AckConfig", { version: msg.version, result: "CONFIG_APPLY_RESULT_APPLIED" });
    log("config applied", { version: msg.version, receipt_header: s.receipt_header });
    this.summary.config_version = msg.version;
    return true;
  }

  // ---- payments ---------------------------------------------------------

  /** Authorize with the unknown-outcome procedure: a lost answer is retried
   * with the same request_id; when no answer comes at all the authorization
   * is reversed with reason TIMEOUT and the ReverseResponse returned.
   * lose simulates a broken link for every attempt: "request" drops the
   * request before it is sent, "response" drops the answer. */
  async authorize(req: Msg, lose?: "request" | "response", attempts = 3): Promise<{ auth?: Msg; reversal?: Msg }> {
    let last: grpc.ServiceError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        if (lose === "request") throw simulatedLoss();
        const resp = await this.once(this.payment, "Authorize", req, PAYMENT_DEADLINE_MS);
        if (lose === "response") throw simulatedLoss();
        return { auth: resp };
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (!UNKNOWN_OUTCOME.has(err.code) && err.code !== grpc.status.RESOURCE_EXHAUSTED) throw err;
        last = err;
        log("authorize outcome unknown, retrying with the same request_id", {
          request_id: req.request_id, code: grpc.status[err.code], reason: errorDetails(err).reason ?? "", simulated: lose ?? "no",
        });
        await backoff(attempt, err);
      }
    }
    log("no answer, reversing", { request_id: req.request_id, last: last && grpc.status[last.code] });
    return { reversal: await this.reverse(req.request_id, "REVERSAL_REASON_TIMEOUT") };
  }

  async reverse(original: string, reason: string): Promise<Msg> {
    const resp = await this.call(this.payment, "Reverse", { request_id: crypto.randomUUID(), original_request_id: original, reason }, {
      deadlineMs: PAYMENT_DEADLINE_MS, retry: UNKNOWN_OUTCOME,
    });
    log("reversed", { original, status: resp.status });
    return resp;
  }

  sale(minor: number, token: string): Msg {
    return {
      request_id: crypto.randomUUID(),
      merchant_id: this.args.merchantId,
      amount: money(minor, this.args.currency),
      card: { token, masked_pan: "555555******4444", entry_mode: "ENTRY_MODE_CONTACTLESS" },
      capture: true,
    };
  }

  async runPayments(): Promise<void> {
    const cur = this.args.currency;
    // A sale, then its replay: same request_id, same content.
    const req = this.sale(1250, "tok_example_mc_0001");
    const first = (await this.authorize(req)).auth;
    check(first !== undefined, "sale got no answer");
    check(first.decision === "DECISION_APPROVED" && first.response_code === "00", `sale not approved: ${first.response_code} ${first.message}`);
    const again = (await this.authorize(req)).auth;
    check(again?.replayed && again.authorization_id === first.authorization_id && again.auth_code === first.auth_code,
      "replay with the same request_id did not return the original answer");
    log("sale approved and replayed", { authorization_id: first.authorization_id, batch: first.batch_number });

    // Two sales whose answers never arrive: one lost on the way out (the
    // server never sees it), one whose answer is lost on the way back (the
    // server approved it). Both are retried, then reversed. Without
    // --simulate-loss (under posfleet conformance, which plays the faults
    // itself) one more sale is made, and whatever happens to it is handled
    // the same way.
    const scenarios: [("request" | "response" | undefined), string | undefined][] = this.args.simulateLoss
      ? [["request", "REVERSE_STATUS_ORIGINAL_NOT_FOUND"], ["response", "REVERSE_STATUS_REVERSED"]]
      : [[undefined, undefined]];
    let saleCount = 1, saleAmount = 1250, reversedCount = 0;
    const lostIds: Record<string, string> = {};
    for (const [lose, want] of scenarios) {
      const lost = this.sale(780, "tok_example_mc_0002");
      const { auth, reversal } = await this.authorize(lost, lose);
      if (auth) {
        check(lose === undefined, `lost-${lose} sale was answered`);
        check(auth.decision === "DECISION_APPROVED", `second sale not approved: ${auth.response_code}`);
        saleCount++;
        saleAmount += 780;
        continue;
      }
      const ok = want ? reversal.status === want : ["REVERSE_STATUS_REVERSED", "REVERSE_STATUS_ORIGINAL_NOT_FOUND"].includes(reversal.status);
      check(ok, `reversal of the lost-${lose} sale: ${reversal.status}`);
      if (reversal.status === "REVERSE_STATUS_REVERSED") {
        reversedCount++;
        check(reversal.reversed_amount?.minor_units === 780, "reversal released the wrong amount");
      }
      // The original, arriving late, must never become a fresh approval: a
      // tombstone declines it (12), a reversed one replays.
      const late = (await this.authorize(lost)).auth;
      check(late !== undefined, "late original got no answer");
      check(!(late.decision === "DECISION_APPROVED" && !late.replayed), `a reversed lost-${lose} sale was approved when it arrived late`);
      if (reversal.status === "REVERSE_STATUS_ORIGINAL_NOT_FOUND") {
        check(late.decision === "DECISION_DECLINED" && late.response_code === "12", `late original after a tombstone: ${late.response_code}, want 12`);
      }
      log("late original", { lost: lose, decision: late.decision, code: late.response_code, replayed: late.replayed });
      lostIds[lose ?? "unanswered"] = lost.request_id;
    }

    if (!this.args.simulateLoss) {
      // One more sale: under posfleet conformance its connection is
      // recycled (GOAWAY) while it is in flight; retried with the same
      // request_id, it gets the server's one decision.
      const extra = (await this.authorize(this.sale(430, "tok_example_mc_0003"))).auth;
      check(extra?.decision === "DECISION_APPROVED", "third sale not approved");
      check(extra.batch_number === first.batch_number, "third sale went into another batch");
      saleCount++;
      saleAmount += 430;
    }

    // A partial refund of the first sale. A decline is an answer, not a
    // failure to retry: 12 says the sale was reversed meanwhile (under
    // posfleet conformance), and a declined refund is not counted.
    const refund = await this.call(this.payment, "Refund", {
      request_id: crypto.randomUUID(), authorization_id: first.authorization_id, amount: money(500, cur),
    }, { deadlineMs: PAYMENT_DEADLINE_MS, retry: UNKNOWN_OUTCOME });
    const refunded = refund.decision === "DECISION_APPROVED";
    check(refunded || refund.response_code === "12", `refund not approved: ${refund.response_code} ${refund.message}`);
    if (refunded) {
      check(refund.remaining_refundable?.minor_units === 750, "refund left the wrong remainder");
      log("refunded", { refund_id: refund.refund_id, remaining: refund.remaining_refundable.minor_units });
    } else {
      log("refund declined, not counted", { code: refund.response_code, message: refund.message });
    }

    // Close the batch with the terminal's own totals, all of which are
    // transactions of the first sale's batch.
    let close = {
      request_id: crypto.randomUUID(),
      batch_number: first.batch_number,
      terminal_totals: {
        sale_count: saleCount, sale_amount: money(saleAmount, cur),
        refund_count: refunded ? 1 : 0, refund_amount: money(refunded ? 500 : 0, cur),
        reversal_count: reversedCount, reversal_amount: money(780 * reversedCount, cur),
      },
    };
    let closed: Msg;
    try {
      closed = await this.call(this.payment, "CloseBatch", close, { deadlineMs: PAYMENT_DEADLINE_MS, retry: UNKNOWN_OUTCOME });
    } catch (e) {
      const err = e as grpc.ServiceError;
      if (err.code !== grpc.status.FAILED_PRECONDITION || errorDetails(err).reason !== "BATCH_MISMATCH") throw err;
      // The server closed the batch itself (the terminal was rebound):
      // close the batch now open, under a new request_id, with this
      // terminal's transactions in it, which are none.
      const open = await this.call(this.payment, "GetOpenBatch", {}, { deadlineMs: PAYMENT_DEADLINE_MS });
      log("batch closed by the server", { batch: first.batch_number, open: open.batch_number });
      check(open.batch_number !== first.batch_number, "BATCH_MISMATCH for the open batch");
      close = {
        request_id: crypto.randomUUID(),
        batch_number: open.batch_number,
        terminal_totals: {
          sale_count: 0, sale_amount: money(0, cur), refund_count: 0, refund_amount: money(0, cur),
          reversal_count: 0, reversal_amount: money(0, cur),
        },
      };
      closed = await this.call(this.payment, "CloseBatch", close, { deadlineMs: PAYMENT_DEADLINE_MS, retry: UNKNOWN_OUTCOME });
    }
    check(closed.in_balance, `batch ${closed.batch_number} out of balance: server ${JSON.stringify(closed.server_totals)}`);
    const replay = await this.call(this.payment, "CloseBatch", close, { deadlineMs: PAYMENT_DEADLINE_MS });
    check(replay.replayed && replay.next_batch_number === closed.next_batch_number, "close-batch replay did not return the original answer");
    log("batch closed in balance", { batch: closed.batch_number, next: closed.next_batch_number });
    Object.assign(this.summary, {
      sale_request_id: req.request_id,
      sale_authorization_id: first.authorization_id,
      lost_request_request_id: lostIds.request ?? "",
      lost_response_request_id: lostIds.response ?? "",
      refund_id: refunded ? refund.refund_id : "",
      batch_number: closed.batch_number,
      next_batch_number: closed.next_batch_number,
    });
  }
}

async function main(): Promise<number> {
  let t: Terminal | undefined;
  try {
    const args = parseArgs(process.argv.slice(2));
    t = new Terminal(args);
    await t.register();
    await t.verifyMerchant();
    await t.heartbeat();
    await t.watchConfig();
    const hb = await t.heartbeat();
    check(hb.config_version === t.configVersion, `server wants config ${hb.config_version}, terminal runs ${t.configVersion}`);
    await t.runPayments();
    // The end of the day checks the identity once more: after a key
    // rotation it is signed by the new key, trusted through the pin.
    await t.verifyMerchant();
  } catch (e) {
    if (e instanceof Failure) {
      log("FAILED", { why: e.message });
    } else {
      const err = e as grpc.ServiceError;
      log("FAILED", { code: err.code !== undefined ? grpc.status[err.code] : "", reason: err.metadata ? errorDetails(err).reason ?? "" : "", detail: err.details ?? err.message });
    }
    return 1;
  } finally {
    t?.close();
  }
  t.summary.commands_acked = [...t.ackedCommands].sort();
  process.stdout.write(JSON.stringify(t.summary) + "\n");
  return 0;
}

main().then((code) => process.exit(code));
