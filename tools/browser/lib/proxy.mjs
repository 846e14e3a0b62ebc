// A TCP proxy in front of the service: the browser talks to the service through it, and a test
// can cut every open connection at once, as a network drop would.

import net from "node:net";

/** Listens on a free loopback port and forwards every connection to `target` (host:port). */
export async function startProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const open = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    open.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    /** Cuts every connection open now (new ones go through). Answers how many it cut. */
    cutAll() {
      const n = open.size;
      for (const { client, upstream } of [...open]) {
        client.resetAndDestroy?.() ?? client.destroy();
        upstream.destroy();
      }
      open.clear();
      return n;
    },
    async stop() {
      this.cutAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
