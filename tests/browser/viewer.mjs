// Loads kao's viewer in Debian's headless Chromium and checks that it shows
// live frames with the faces drawn. Run by tests/http.rs:
//
//   node tests/browser/viewer.mjs URL SCREENSHOT.png
//
// Phases, each reported as one JSON line on stdout:
//   1. "shown": frames arrive and faces are drawn (page state and canvas
//      pixels of the overlay colours), pause holds the picture, the
//      screenshots (projector-sized, and phone-sized beside it with
//      "-phone" in the name) are written; latency and fps as measured in
//      the page.
//   2. after the line "stopped" on stdin: the page notices the daemon left.
//   3. after the line "restarted" on stdin: the page reconnected by itself
//      and shows frames again.
// Any failure prints {"error": …} and exits 1.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node viewer.mjs URL SCREENSHOT.png");
  process.exit(2);
}
// A deadline for each wait, so a broken page fails the test instead of
// hanging it; nothing is asserted about how fast things happen.
const WAIT_MS = 90_000;
const BOX = [0xff, 0x9b, 0x00];
const KEYPOINT = [0x00, 0xe0, 0x5a];
const MESH = [0x39, 0xc8, 0xff];

const report = (obj) => console.log(JSON.stringify(obj));
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expectLine(word) {
  const { value, done } = await lines.next();
  if (done || value.trim() !== word) throw new Error(`expected "${word}" on stdin, got ${JSON.stringify(value)}`);
}

const profile = mkdtempSync(join(tmpdir(), "kao-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The page must load nothing from anywhere but kao itself.
  const foreign = [];
  const origin = new URL(url).origin;
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== origin && !(u.protocol === "ws:" && u.host === new URL(url).host)) foreign.push(r.url());
  });

  await page.goto(url);
  // The token, if any, is taken out of the address bar.
  const shownUrl = page.url();
  await page.waitForFunction(
    () => window.kaoViewer && window.kaoViewer.framesShown >= 15 && window.kaoViewer.lastFaces.length > 0,
    null,
    { timeout: WAIT_MS, polling: 100 },
  );
  // Let latency and fps settle over a window of frames.
  const start = await page.evaluate(() => window.kaoViewer.framesShown);
  await page.waitForFunction((n) => window.kaoViewer.framesShown >= n + 30, start, {
    timeout: WAIT_MS,
    polling: 100,
  });
  const stats = await page.evaluate(() => window.kaoViewer.stats());

  await page.screenshot({ path: screenshot });
  // Pause, so the canvas holds one frame, and look at its pixels.
  await page.click("#pause");
  await page.waitForTimeout(300);
  const check = await page.evaluate(
    ({ BOX, KEYPOINT }) => {
      const v = window.kaoViewer;
      const canvas = document.getElementById("video");
      const ctx = canvas.getContext("2d");
      const px = (x, y) => Array.from(ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data.slice(0, 3));
      const same = (a, b) => a.every((c, i) => Math.abs(c - b[i]) <= 2);
      const faces = v.lastFaces.map((f) => {
        const b = f.box;
        // Points along the four sides of the box, away from the corners.
        const edge = [];
        for (let t = 0.2; t <= 0.8; t += 0.1) {
          edge.push(px(b.x + t * b.w, b.y), px(b.x + t * b.w, b.y + b.h - 0.5));
          edge.push(px(b.x, b.y + t * b.h), px(b.x + b.w - 0.5, b.y + t * b.h));
        }
        const onEdge = edge.filter((p) => same(p, BOX)).length;
        const kp = Object.values(f.keypoints).filter((p) => same(px(p[0], p[1]), KEYPOINT)).length;
        return { box: b, edgePoints: edge.length, edgeInBoxColour: onEdge, keypointsInColour: kp };
      });
      return { shown: v.framesShown, width: canvas.width, height: canvas.height, faces };
    },
    { BOX, KEYPOINT },
  );
  // Each toggle takes its overlay off the picture: with boxes off, the box
  // edges show the video again.
  await page.click('[data-draw="boxes"]');
  const boxesOff = await page.evaluate(
    ({ BOX }) => {
      const ctx = document.getElementById("video").getContext("2d");
      const b = window.kaoViewer.lastFaces[0].box;
      const p = Array.from(ctx.getImageData(Math.floor(b.x + b.w / 2), Math.floor(b.y + b.h - 0.5), 1, 1).data.slice(0, 3));
      return !p.every((c, i) => Math.abs(c - BOX[i]) <= 2);
    },
    { BOX },
  );
  await page.click('[data-draw="boxes"]');
  // Dense keypoints (a mesh), when a face has them, are drawn as dots.
  const mesh = await page.evaluate(
    ({ MESH }) => {
      const v = window.kaoViewer;
      const frame = structuredClone(v.lastFrame);
      const b = frame.faces[0].box;
      // Inside the box, away from its edges and from the five keypoints.
      frame.faces[0].mesh = [[b.x + b.w * 0.15, b.y + b.h * 0.15, 0], [b.x + b.w * 0.85, b.y + b.h * 0.9, 0]];
      v.redraw(frame);
      const ctx = document.getElementById("video").getContext("2d");
      const hits = frame.faces[0].mesh.filter((p) => {
        const px = Array.from(ctx.getImageData(Math.floor(p[0]), Math.floor(p[1]), 1, 1).data.slice(0, 3));
        return px.every((c, i) => Math.abs(c - MESH[i]) <= 2);
      }).length;
      v.redraw(v.lastFrame);
      return hits;
    },
    { MESH },
  );
  await page.waitForTimeout(500);
  const afterPause = await page.evaluate(() => window.kaoViewer.framesShown);
  await page.click("#pause");
  // The same page on a phone, upright.
  const phone = screenshot.replace(/\.png$/, "") + "-phone.png";
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction((n) => window.kaoViewer.framesShown >= n + 3, afterPause, {
    timeout: WAIT_MS,
    polling: 100,
  });
  await page.screenshot({ path: phone });
  await page.setViewportSize({ width: 1280, height: 800 });
  report({
    phone_screenshot: phone,
    phase: "shown",
    url: shownUrl,
    stats,
    canvas: check,
    paused_frames_held: afterPause === check.shown,
    boxes_toggle_hides_boxes: boxesOff,
    mesh_points_drawn: mesh,
    errors,
    foreign,
  });

  await expectLine("stopped");
  await page.waitForFunction(() => !window.kaoViewer.connected, null, { timeout: WAIT_MS, polling: 100 });
  const banner = await page.textContent("#banner");
  report({ phase: "stopped", banner });

  await expectLine("restarted");
  const before = await page.evaluate(() => window.kaoViewer.framesShown);
  await page.waitForFunction(
    (n) => window.kaoViewer.connected && window.kaoViewer.framesShown >= n + 5,
    before,
    { timeout: WAIT_MS, polling: 100 },
  );
  report({ phase: "restarted", frames: await page.evaluate(() => window.kaoViewer.framesShown), errors, foreign });
} catch (e) {
  report({ error: String(e && e.stack ? e.stack : e) });
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
