// kao viewer: shows the daemon's frames and draws the faces from the
// frame metadata. Protocol: docs/HTTP.md. State for tests and for the
// curious is on window.kaoViewer.
"use strict";
(() => {
  const BOX = "#ff9b00";
  const KEYPOINT = "#00e05a";
  const MESH = "#39c8ff";
  const KEYPOINTS = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 5000;
  const STATUS_EVERY_MS = 2000;
  // Figures are averaged over the last this many shown frames.
  const WINDOW = 30;

  const $ = (id) => document.getElementById(id);
  const canvas = $("video");
  const ctx = canvas.getContext("2d");

  // The token arrives once in the address (?token=…); keep it for this tab
  // only and take it out of the address bar, so it is not shown on the
  // projector nor kept in the history.
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("kao.token", params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
  const token = sessionStorage.getItem("kao.token") || "";

  const draw = {};
  for (const box of document.querySelectorAll("[data-draw]")) {
    draw[box.dataset.draw] = box.checked;
    box.addEventListener("change", () => {
      draw[box.dataset.draw] = box.checked;
      $("panel").hidden = !draw.panel;
      if (state.lastFrame && state.lastImage) render(state.lastImage, state.lastFrame);
    });
  }

  const state = {
    connected: false,
    hello: null,
    status: null,
    paused: false,
    framesShown: 0,
    missed: 0,
    lastFrame: null,
    lastFaces: [],
    lastImage: null,
    // Capture → shown, ms, of the last WINDOW frames.
    latencies: [],
    // Capture → metadata received, ms: the part of the latency before the page.
    arrivals: [],
    // Capture → result in the daemon (the frame's timings_ms.total), ms.
    pipeline: [],
    shownAt: [],
    draw,
    // Draws the image shown last with other metadata (as if the frame had
    // come with it): for trying out overlays, e.g. a mesh, from the console.
    redraw(frame) {
      if (this.lastImage) render(this.lastImage, frame);
    },
    stats() {
      const quantile = (values, p) => {
        const l = [...values].sort((a, b) => a - b);
        return l.length ? l[Math.min(l.length - 1, Math.floor(p * l.length))] : null;
      };
      const q = (p) => quantile(this.latencies, p);
      const t = this.shownAt;
      const fps = t.length > 1 ? ((t.length - 1) * 1000) / (t[t.length - 1] - t[0]) : null;
      return {
        fps,
        latency_p50_ms: q(0.5),
        latency_p95_ms: q(0.95),
        received_p50_ms: quantile(this.arrivals, 0.5),
        pipeline_p50_ms: quantile(this.pipeline, 0.5),
        frames: this.framesShown,
      };
    },
  };
  window.kaoViewer = state;

  let socket = null;
  let retryMs = RECONNECT_MIN_MS;
  let meta = null; // the frame message whose JPEG comes next

  function banner(text) {
    $("banner").textContent = text || "";
    $("banner").hidden = !text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = token ? "?token=" + encodeURIComponent(token) : "";
    socket = new WebSocket(scheme + "//" + location.host + "/ws" + query);
    socket.binaryType = "blob";
    socket.onmessage = onMessage;
    socket.onclose = () => {
      state.connected = false;
      meta = null;
      banner("kao is not reachable — reconnecting in " + (retryMs / 1000).toFixed(1) + " s");
      setTimeout(connect, retryMs);
      retryMs = Math.min(RECONNECT_MAX_MS, retryMs * 2);
    };
  }

  function ack() {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send('{"type":"ack"}');
  }

  async function onMessage(event) {
    if (typeof event.data !== "string") {
      const frame = meta;
      meta = null;
      if (frame) await show(event.data, frame);
      ack();
      return;
    }
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (msg.type === "hello") {
      state.connected = true;
      state.hello = msg;
      retryMs = RECONNECT_MIN_MS;
      banner("");
      document.title = "kao 顔 — " + msg.source.split("/").pop();
    } else if (msg.type === "frame") {
      meta = msg;
      state.arrivals.push(Date.now() - msg.captured_at_ms);
      state.pipeline.push((msg.timings_ms && msg.timings_ms.total) || 0);
      if (state.arrivals.length > WINDOW) state.arrivals.shift();
      if (state.pipeline.length > WINDOW) state.pipeline.shift();
    } else if (msg.type === "source") {
      banner("source " + msg.state + ": " + msg.detail);
    } else if (msg.type === "bye") {
      banner("kao stopped (" + msg.reason + ") — waiting for it to come back");
    }
  }

  async function show(blob, frame) {
    state.missed += frame.missed || 0;
    if (state.paused) return;
    let image;
    try {
      image = await createImageBitmap(blob);
    } catch {
      return;
    }
    if (state.lastImage) state.lastImage.close();
    state.lastImage = image;
    render(image, frame);
    const now = Date.now();
    state.framesShown += 1;
    state.lastFrame = frame;
    state.lastFaces = frame.faces;
    state.latencies.push(now - frame.captured_at_ms);
    state.shownAt.push(performance.now());
    if (state.latencies.length > WINDOW) state.latencies.shift();
    if (state.shownAt.length > WINDOW) state.shownAt.shift();
    updatePanel(frame);
  }

  function render(image, frame) {
    if (canvas.width !== frame.width || canvas.height !== frame.height) {
      canvas.width = frame.width;
      canvas.height = frame.height;
    }
    ctx.drawImage(image, 0, 0, frame.width, frame.height);
    // Lines and text scale with the frame, so they read on a projector.
    const unit = Math.max(2, Math.round(Math.max(frame.width, frame.height) / 240));
    for (const face of frame.faces) drawFace(face, unit);
  }

  function drawFace(face, unit) {
    const b = face.box;
    if (draw.mesh && Array.isArray(face.mesh)) {
      ctx.fillStyle = MESH;
      // Whole pixels: crisp dots, however many there are.
      const r = Math.max(2, Math.round(unit * 0.7));
      for (const p of face.mesh) ctx.fillRect(Math.round(p[0] - r / 2), Math.round(p[1] - r / 2), r, r);
    }
    if (draw.boxes) {
      ctx.lineWidth = unit;
      ctx.strokeStyle = BOX;
      ctx.strokeRect(b.x, b.y, b.w, b.h);
    }
    if (draw.keypoints && face.keypoints) {
      for (const name of KEYPOINTS) {
        const p = face.keypoints[name];
        if (!p) continue;
        ctx.beginPath();
        ctx.arc(p[0], p[1], unit * 1.3, 0, 2 * Math.PI);
        ctx.fillStyle = KEYPOINT;
        ctx.fill();
        ctx.lineWidth = Math.max(1, unit / 2);
        ctx.strokeStyle = "#000";
        ctx.stroke();
      }
    }
    const words = [];
    if (draw.scores) words.push(face.score.toFixed(2));
    if (draw.labels) {
      for (const key of ["identity", "label", "track"]) {
        if (face[key] !== undefined && face[key] !== null) words.push((key === "track" ? "#" : "") + face[key]);
      }
    }
    if (words.length) {
      const text = words.join("  ");
      const size = unit * 7;
      ctx.font = "600 " + size + "px system-ui, sans-serif";
      const w = ctx.measureText(text).width + unit * 2;
      const y = b.y - size - unit >= 0 ? b.y - size - unit : b.y + b.h;
      ctx.fillStyle = BOX;
      ctx.fillRect(b.x - unit / 2, y, w, size + unit);
      ctx.fillStyle = "#000";
      ctx.textBaseline = "top";
      ctx.fillText(text, b.x + unit / 2, y + unit / 2);
    }
  }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }

  function updatePanel(frame) {
    const s = state.stats();
    $("fps").textContent = s.fps === null ? "–" : s.fps.toFixed(1);
    $("latency").textContent = s.latency_p50_ms === null ? "–" : Math.round(s.latency_p50_ms);
    $("faces").textContent = frame.faces.length;
    $("dropped").textContent = frame.dropped;
    $("missed").textContent = state.missed;
    const stages = Object.entries(frame.timings_ms || {});
    const total = (frame.timings_ms && frame.timings_ms.total) || 1;
    const rows = stages.map(([name, ms]) => {
      const pct = Math.min(100, (100 * ms) / total).toFixed(0);
      return "<tr><td>" + esc(name) + '</td><td style="width:40%"><div class="bar" style="width:' + pct +
        '%"></div></td><td>' + ms.toFixed(1) + "</td></tr>";
    });
    $("stages").innerHTML = rows.join("");
  }

  async function pollStatus() {
    try {
      const r = await fetch("/api/v1/status", {
        headers: token ? { Authorization: "Bearer " + token } : {},
        cache: "no-store",
      });
      if (r.status === 401) {
        banner("this kao needs its access token: open the page as /?token=…");
      } else if (r.ok) {
        const s = await r.json();
        state.status = s;
        $("clients").textContent = s.clients.web + " web · " + s.clients.socket + " socket";
        $("source").textContent = s.source.state;
      }
    } catch {
      // The WebSocket's reconnect banner already says the daemon is away.
    }
    setTimeout(pollStatus, STATUS_EVERY_MS);
  }

  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").setAttribute("aria-pressed", String(state.paused));
    $("pause").textContent = state.paused ? "Resume" : "Pause";
  });

  connect();
  pollStatus();
})();
