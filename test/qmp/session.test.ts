import { statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qmp/client.js";
import { RawQmp } from "../helpers/raw-qmp.js";
import { startVm, type VmProcess } from "../helpers/vm.js";

let vm: VmProcess;
beforeAll(async () => {
  vm = await startVm(["--name", "teach"]);
});
afterAll(async () => {
  await vm.kill();
});

describe("QMP session", () => {
  it("creates its unix socket with mode 0600", () => {
    expect(statSync(vm.qmpPath).mode & 0o777).toBe(0o600);
  });

  it("greets in QEMU's shape, naming minivm, with the oob capability, ending lines with CRLF", async () => {
    const r = await RawQmp.open(vm.qmpPath);
    const greeting = r.greeting;
    expect(greeting).toMatch(/^\{"QMP": \{"version": \{"qemu": \{"micro": \d+, "minor": \d+, "major": \d+\}, "package": "minivm \d+\.\d+\.\d+"\}, "capabilities": \["oob"\]\}\}$/);
    r.close();
  });

  it("answers everything but qmp_capabilities before negotiation with QEMU's CommandNotFound text", async () => {
    const r = await RawQmp.open(vm.qmpPath);
    r.send('{"execute": "query-status", "id": 7}');
    expect(await r.line()).toBe('{"id": 7, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}');
    r.send('{"execute": "nosuch"}');
    expect(await r.line()).toBe('{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}');
    r.send('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": {"a": [1, 2]}}');
    expect(await r.line()).toBe('{"return": {}, "id": {"a": [1, 2]}}');
    r.send('{"execute": "qmp_capabilities", "id": null}');
    expect(await r.line()).toBe('{"id": null, "error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}');
    r.close();
  });

  it("refuses an unknown capability value during negotiation", async () => {
    const r = await RawQmp.open(vm.qmpPath);
    r.send('{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}, "id": 1}');
    expect(JSON.parse(await r.line())).toEqual({ id: 1, error: { class: "GenericError", desc: "Parameter 'null' does not accept value 'foo'" } });
    r.close();
  });

  it.each([
    ['[1, 2]', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
    ['{"id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}'],
    ['{"execute": 1, "id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "QMP input member \'execute\' must be a string"}}'],
    ['{"execute": "query-status", "arguments": [], "id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "QMP input member \'arguments\' must be an object"}}'],
    ['{"execute": "query-status", "foo": 1, "id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "QMP input member \'foo\' is unexpected"}}'],
    ['{"execute": "nosuch", "id": 3}', '{"id": 3, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}'],
    ['{"execute": "human-monitor-command", "id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "Parameter \'command-line\' is missing"}}'],
    ['{"execute": "human-monitor-command", "arguments": {"command-line": 1}, "id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "Invalid parameter type for \'command-line\', expected: string"}}'],
    ['{"execute": "query-status", "arguments": {"x": 1}, "id": 3}', '{"id": 3, "error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}'],
    ['{"execute": "query-status", "id": 1.5e3}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": 1500}'],
    ['{"execute": "query-name", "id": "n"}', '{"return": {"name": "teach"}, "id": "n"}'],
    ['{"execute": "human-monitor-command", "arguments": {"command-line": "info status"}, "id": 3}', '{"return": "VM status: paused (prelaunch)\\r\\n", "id": 3}'],
    ['{"execute": "human-monitor-command", "arguments": {"command-line": "nosuch"}, "id": 3}', '{"return": "unknown command: \'nosuch\'\\r\\n", "id": 3}'],
    ["{'execute': 'query-status', 'id': 'sq'}", '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": "sq"}'],
    ['{"execute": "query-status", "id": 18446744073709551615}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": 18446744073709551615}'],
  ])("answers %s in QEMU's words", async (input, expected) => {
    const r = await RawQmp.open(vm.qmpPath);
    r.send('{"execute": "qmp_capabilities"}');
    await r.line();
    r.send(input);
    expect(await r.line()).toBe(expected);
    r.close();
  });

  it("reports malformed JSON and recovers after a lexical error, as QEMU does", async () => {
    const r = await RawQmp.open(vm.qmpPath);
    r.send('{"execute": "qmp_capabilities"}');
    await r.line();
    r.send("{]");
    expect(await r.line()).toBe('{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}');
    r.send("@");
    expect(await r.line()).toBe('{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'@\'"}}');
    r.send(Buffer.from([0xff]));
    expect(await r.line()).toBe('{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}');
    // An unclosed object swallows later lines until a control character resets the lexer.
    r.send('{"execute": \n');
    r.send('"query-status"');
    r.send("\x01");
    // The half-read object is dropped silently; only the control character is reported.
    expect(await r.line()).toBe('{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\u0001\'"}}');
    r.send('{"execute": "query-status", "id": "after"}');
    expect(JSON.parse(await r.line())).toMatchObject({ id: "after", return: { status: "prelaunch" } });
    r.close();
  });

  it("parses requests split across writes and several in one write", async () => {
    const c = await vm.connect();
    const text = '{"execute": "query-status", "id": "a"}{"execute": "query-name", "id": "b"}';
    const a = c.sendWithId(text.slice(0, 5), "a");
    const b = c.sendWithId(text.slice(5), "b");
    expect(await a).toMatchObject({ return: { status: "prelaunch" } });
    expect(await b).toMatchObject({ return: { name: "teach" } });
    c.close();
  });

  it("lists its commands and its schema", async () => {
    const c = await vm.connect();
    const cmds = (await c.execute("query-commands")).map((x) => x.name);
    expect(cmds).toEqual(expect.arrayContaining(["qmp_capabilities", "query-status", "x-oob-test", "x-query-bql", "human-monitor-command", "quit"]));
    const schema = (await c.execute("query-qmp-schema")) as Array<{ name: string; "meta-type": string; "allow-oob"?: boolean }>;
    const oobTest = schema.find((e) => e.name === "x-oob-test");
    expect(oobTest).toMatchObject({ "meta-type": "command", "allow-oob": true });
    expect(schema.find((e) => e.name === "query-status")?.["allow-oob"]).toBeUndefined();
    c.close();
  });

  it("serves a client that is not minivm's: a bare socket speaking line-by-line", async () => {
    const c = await QmpClient.connect(`unix:${vm.qmpPath}`, { oob: false });
    expect(c.greeting.QMP.version.package).toMatch(/^minivm /);
    expect(await c.execute("query-version")).toMatchObject({ qemu: { major: 7, minor: 2 } });
    c.close();
  });
});

describe("QMP input limits", () => {
  it("refuses a message over the size cap with QEMU's token-size error and stays usable", async () => {
    const r = await RawQmp.open(vm.qmpPath);
    r.send('{"execute": "qmp_capabilities"}');
    await r.line();
    // 2 MiB of string inside one request: over minivm's 1 MiB cap per message.
    r.send(`{"execute": "query-status", "arguments": {"x": "${"a".repeat(2 << 20)}"}}`);
    expect(await r.line()).toBe('{"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}');
    // What follows the oversized message is re-parsed as QEMU does; a fresh request then works.
    r.send("\x01");
    r.send('{"execute": "query-status", "id": "after"}');
    for (;;) {
      const l = await r.line();
      if (l.includes('"id": "after"')) {
        expect(JSON.parse(l)).toMatchObject({ return: { status: "prelaunch" } });
        break;
      }
    }
    r.close();
  });

  it("refuses nesting deeper than 1024 with QEMU's error", async () => {
    const r = await RawQmp.open(vm.qmpPath);
    r.send('{"execute": "qmp_capabilities"}');
    await r.line();
    r.send("[".repeat(1025) + "]".repeat(1025));
    expect(await r.line()).toBe('{"error": {"class": "GenericError", "desc": "JSON nesting depth limit exceeded"}}');
    r.close();
  });
});
