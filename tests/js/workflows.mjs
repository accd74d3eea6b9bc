// The official JS client (@langchain/langgraph-sdk) against a running threadloom server:
// the seed's workflows, parallel interrupts answered by id, streaming, the store, auth.
//
//     node tests/js/workflows.mjs <scenario> <server url> <api key>
//
// Each scenario throws (exit code 1, the assertion on stderr) when the server answers
// otherwise; prints "ok <scenario>" when it passes. Driven by
// tests/server/test_js_sdk.py, which starts the server (the graphs of
// tests/server/graphs.py, the API keys of tests/server/conftest.py).
import assert from "node:assert/strict";
import { Client } from "@langchain/langgraph-sdk";

const [scenario, apiUrl, apiKey] = process.argv.slice(2);
const client = new Client({ apiUrl, apiKey, callerOptions: { maxRetries: 0 } });
const HUMAN = { messages: [{ role: "user", content: "Delete the file /tmp/old_data.csv" }] };

const scenarios = {
  // workflow 3: interrupt() in review; the thread shows it; resume with a command
  async planReview() {
    const { thread_id } = await client.threads.create();
    const out = await client.runs.wait(thread_id, "plan", { input: { messages: [] } });
    assert.equal(out.__interrupt__.length, 1);
    const [pending] = out.__interrupt__;
    assert.ok(pending.value.startsWith("Please review the plan"), pending.value);
    const thread = await client.threads.get(thread_id);
    assert.equal(thread.status, "interrupted");
    const [[, [asked]]] = Object.entries(thread.interrupts);
    assert.equal(asked.id, pending.id);
    const found = await client.threads.search({
      status: "interrupted", metadata: { graph_id: "plan" }, limit: 100,
    });
    assert.ok(found.some((t) => t.thread_id === thread_id));
    const final = await client.runs.wait(thread_id, "plan", { command: { resume: "approve" } });
    assert.equal(final.messages.at(-1).content, "Executing the plan now.");
    const after = await client.threads.get(thread_id);
    assert.equal(after.status, "idle");
    assert.deepEqual(after.interrupts, {});
  },

  // workflow 2: pause before the tools, rewrite the call as the agent, resume
  async correctedToolCall() {
    const { thread_id } = await client.threads.create();
    await client.runs.wait(thread_id, "tool_agent", { input: HUMAN });
    const state = await client.threads.getState(thread_id);
    assert.deepEqual(state.next, ["tools"]);
    const last = state.values.messages.at(-1);
    const [call] = last.tool_calls;
    assert.equal(call.name, "delete_file");
    const corrected = {
      type: "ai", content: "", id: last.id,
      tool_calls: [{ id: call.id, name: "read_file", args: { path: "/tmp/old_data.csv" } }],
    };
    await client.threads.updateState(thread_id, { values: { messages: [corrected] }, asNode: "agent" });
    assert.deepEqual((await client.threads.getState(thread_id)).next, ["tools"]);
    const final = await client.runs.wait(thread_id, "tool_agent", { input: null });
    const tools = final.messages.filter((m) => m.type === "tool");
    assert.equal(tools.at(-1).content, "Contents of /tmp/old_data.csv: ...");
    const history = await client.threads.getHistory(thread_id, { limit: 100 });
    assert.ok(history.length >= 4, `history of ${history.length} checkpoints`);
  },

  // workflow 1 streamed: metadata first, values and updates, the static pause; then resumed
  async streamedEmail() {
    const { thread_id } = await client.threads.create();
    const parts = [];
    for await (const part of client.runs.stream(thread_id, "email", {
      input: { messages: [{ role: "user", content: "report" }] },
      streamMode: ["values", "updates"],
    })) {
      parts.push(part);
    }
    assert.equal(parts[0].event, "metadata");
    assert.ok(parts[0].data.run_id);
    const updates = parts.filter((p) => p.event === "updates").map((p) => p.data);
    assert.ok("draft" in updates[0], JSON.stringify(updates[0]));
    assert.deepEqual(updates.at(-1), { __interrupt__: [] });
    const values = parts.filter((p) => p.event === "values").map((p) => p.data);
    assert.ok(values.at(-1).messages.at(-1).content.startsWith("Draft:"));
    assert.deepEqual((await client.threads.getState(thread_id)).next, ["send"]);
    const final = await client.runs.wait(thread_id, "email", { input: null });
    assert.equal(final.messages.at(-1).content, "Email sent successfully.");
  },

  // two interrupts pending at once, each answered by its id
  async parallelById() {
    const { thread_id } = await client.threads.create();
    const out = await client.runs.wait(thread_id, "parallel", { input: { answers: [] } });
    const byValue = Object.fromEntries(out.__interrupt__.map((i) => [i.value, i.id]));
    assert.deepEqual(Object.keys(byValue).sort(), ["finance ok?", "legal ok?"]);
    await client.runs.wait(thread_id, "parallel", {
      command: { resume: { [byValue["legal ok?"]]: "yes" } },
    });
    const thread = await client.threads.get(thread_id);
    assert.equal(thread.status, "interrupted");
    const left = Object.values(thread.interrupts).flat().map((i) => i.value);
    assert.deepEqual(left, ["finance ok?"]);
    const final = await client.runs.wait(thread_id, "parallel", {
      command: { resume: { [byValue["finance ok?"]]: "fine" } },
    });
    assert.deepEqual([...final.answers].sort(), ["finance:fine", "legal:yes"]);
  },

  // a background run, joined; runs listed; a second answer to a decided approval refused
  async backgroundRunAndJoin() {
    const { thread_id } = await client.threads.create();
    const run = await client.runs.create(thread_id, "plan", { input: { messages: [] } });
    assert.ok(["pending", "running", "success"].includes(run.status), run.status);
    const joined = await client.runs.join(thread_id, run.run_id);
    assert.equal(joined.__interrupt__.length, 1);
    const runs = await client.runs.list(thread_id);
    assert.deepEqual(runs.map((r) => r.run_id), [run.run_id]);
    assert.equal((await client.runs.get(thread_id, run.run_id)).status, "success");
    await assert.rejects(client.threads.get("00000000-0000-0000-0000-000000000000"),
      (error) => error.status === 404);
  },

  // multitask "reject" on a busy thread is a 409; a cancel interrupts the run, which resumes
  // (the slow graph's second node waits until a store item named after its tag exists)
  async rejectCancelResume() {
    const tag = `t${Date.now()}${Math.random().toString(16).slice(2)}`;
    const config = { configurable: { tag } };
    const { thread_id } = await client.threads.create();
    const run = await client.runs.create(thread_id, "slow", { input: { log: [] }, config });
    const until = async (done) => {
      for (let i = 0; i < 2000 && !(await done()); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(await done(), "timed out");
    };
    await until(async () => (await client.threads.getState(thread_id)).next[0] === "second");
    await assert.rejects(
      client.runs.create(thread_id, "slow", { input: { log: [] }, config, multitaskStrategy: "reject" }),
      (error) => error.status === 409,
    );
    await client.runs.cancel(thread_id, run.run_id, true);
    assert.equal((await client.runs.get(thread_id, run.run_id)).status, "interrupted");
    assert.equal((await client.threads.get(thread_id)).status, "interrupted");
    await client.store.putItem(["gates"], tag, { open: true });
    const out = await client.runs.wait(thread_id, "slow", { input: null, config });
    assert.deepEqual(out.log, [`first:${tag}`, `second:${tag}`]);
  },

  // a resumable stream replayed after the run ended: from the start, then after an event id
  async resumableStreamReplay() {
    const { thread_id } = await client.threads.create();
    const run = await client.runs.create(thread_id, "email", {
      input: { messages: [{ role: "user", content: "report" }] },
      streamMode: ["values", "updates"], streamResumable: true,
    });
    await client.runs.join(thread_id, run.run_id);
    const replay = async (lastEventId) => {
      const parts = [];
      for await (const part of client.runs.joinStream(thread_id, run.run_id, { lastEventId })) {
        parts.push(part);
      }
      return parts;
    };
    const all = await replay("-1");
    assert.equal(all[0].event, "metadata");
    assert.ok(all.some((p) => p.event === "updates" && "draft" in p.data));
    const ids = all.map((p) => p.id);
    assert.ok(ids.every((id) => typeof id === "string" && id.length > 0), JSON.stringify(ids));
    const later = await replay(ids[1]);
    assert.deepEqual(later.map((p) => p.id), ids.slice(2));
    assert.deepEqual(later.map((p) => p.event), all.slice(2).map((p) => p.event));
  },

  // the store: put, get, search, delete
  async store() {
    const namespace = ["js-sdk", `n${Date.now()}`];
    await client.store.putItem(namespace, "pref", { theme: "dark" });
    const item = await client.store.getItem(namespace, "pref");
    assert.deepEqual(item.value, { theme: "dark" });
    assert.deepEqual(item.namespace, namespace);
    const { items } = await client.store.searchItems(["js-sdk"], { limit: 10 });
    assert.ok(items.some((i) => i.key === "pref" && i.namespace[1] === namespace[1]));
    await client.store.deleteItem(namespace, "pref");
    assert.equal(await client.store.getItem(namespace, "pref"), null);
  },

  // no key, a wrong key: refused (the client sends x-api-key)
  async refusedWithoutKey() {
    for (const key of [null, "not-a-key"]) {
      const stranger = new Client({ apiUrl, apiKey: key, callerOptions: { maxRetries: 0 } });
      await assert.rejects(stranger.threads.create(),
        (error) => error.status === 401 || error.status === 403, `key ${key}`);
    }
  },
};

const run = scenarios[scenario];
if (run === undefined) {
  console.error(`no scenario ${scenario}; one of: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await run();
console.log(`ok ${scenario}`);
