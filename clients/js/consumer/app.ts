// A sample consumer: must type-check against the installed package.
import HeraldDefault, { HeraldClient, HeraldError, type MessageMeta, type HeraldOptions, type Transport } from "@heraldrt/herald";

interface Progress { type: "oracle_upload_progress"; step_number: number; total_steps: number; step: string }

const opts: HeraldOptions = {
  url: "https://rt.example.com",
  getToken: async () => "token",
  transports: ["websocket", "sse"],
  notify: { types: ["oracle_upload_completed"], title: (d) => String(d.type), onlyWhenHidden: true },
  share: true,
};
const client: HeraldClient = new HeraldDefault(opts);
const off: () => void = client.on<Progress>("oracle_upload_progress", (data, meta: MessageMeta) => {
  const n: number = data.step_number;
  const c: string | undefined = meta.cursor;
  void n; void c;
});
off();
client.lifecycle.on("transport", (t: Transport | null) => void t);
client.lifecycle.on("state", (s) => { const ok: "idle" | "connecting" | "open" | "closed" = s; void ok; });
client.lifecycle.on("role", (r) => void r);
client.lifecycle.on("disconnected", (e) => { const again: boolean = e.reconnect; void again; });
client.lifecycle.on("error", (e: HeraldError) => { const code: string = e.code; void code; });
client.setTypes(["oracle_upload_*", "-oracle_upload_progress"]);
async function page(): Promise<number> {
  const h = await client.history({ limit: 10 });
  return h.messages.length + (h.next === "" ? 0 : 1);
}
void page;
client.connect().disconnect();
void HeraldClient.requestNotificationPermission();

// @ts-expect-error: lifecycle names are not message types
client.lifecycle.on("oracle_upload_progress", () => {});
// @ts-expect-error: transports are "websocket" | "sse"
new HeraldClient({ transports: ["polling"] });
