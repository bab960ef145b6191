"""A small offline WebGL viewer of GLB files, as HTML for the demo report.

No CDN and no library: the script below parses the GLB container itself (JSON chunk + BIN
chunk), reads each primitive's ``POSITION``, ``NORMAL``, ``COLOR_0`` and ``indices``
accessors (any byte stride, float or normalised integer colours, 8/16/32-bit indices;
triangles, or points for a point cloud), and draws them with WebGL and one directional
light. Drag to orbit, wheel to zoom.

After the first frame each canvas carries what it drew, for tests and curious readers:
``data-state`` ("drawn", or "error"/"no-webgl" with ``data-error``), ``data-vertices``,
``data-triangles``, ``data-points`` and ``data-center`` (the RGBA of the centre pixel).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

VIEWER_JS = r"""
(function () {
  "use strict";
  var COMPONENTS = {SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4};
  var TYPES = {5120: Int8Array, 5121: Uint8Array, 5122: Int16Array, 5123: Uint16Array,
               5125: Uint32Array, 5126: Float32Array};
  var NORM = {5120: 127, 5121: 255, 5122: 32767, 5123: 65535, 5125: 1, 5126: 1};

  function parseGlb(buffer) {
    var view = new DataView(buffer);
    if (view.getUint32(0, true) !== 0x46546C67) throw new Error("not a GLB file");
    if (view.getUint32(4, true) !== 2) throw new Error("not glTF 2");
    var json = null, bin = null, offset = 12;
    while (offset + 8 <= buffer.byteLength) {
      var length = view.getUint32(offset, true), type = view.getUint32(offset + 4, true);
      var body = new Uint8Array(buffer, offset + 8, length);
      if (type === 0x4E4F534A) json = JSON.parse(new TextDecoder().decode(body));
      if (type === 0x004E4942) bin = body;
      offset += 8 + length;
    }
    if (!json || !bin) throw new Error("GLB without JSON or BIN chunk");
    return {json: json, bin: bin};
  }

  // accessor -> Float32Array (normalised when asked) or the integer array for indices
  function readAccessor(glb, index, normalise) {
    var acc = glb.json.accessors[index], bv = glb.json.bufferViews[acc.bufferView];
    var n = COMPONENTS[acc.type], Type = TYPES[acc.componentType];
    var size = Type.BYTES_PER_ELEMENT, stride = bv.byteStride || n * size;
    var start = glb.bin.byteOffset + (bv.byteOffset || 0) + (acc.byteOffset || 0);
    var data = new DataView(glb.bin.buffer), out = new (normalise ? Float32Array : Type)(
      acc.count * n);
    var get = {1: "getUint8", 2: "getUint16", 4: "getUint32"}[size];
    if (Type === Float32Array) get = "getFloat32";
    else if (Type === Int8Array) get = "getInt8";
    else if (Type === Int16Array) get = "getInt16";
    var scale = normalise && acc.normalized !== false ? NORM[acc.componentType] : 1;
    for (var i = 0; i < acc.count; i++)
      for (var c = 0; c < n; c++)
        out[i * n + c] = data[get](start + i * stride + c * size, true) / scale;
    return {array: out, n: n, count: acc.count};
  }

  function vertexNormals(pos, idx) {
    var nrm = new Float32Array(pos.length);
    for (var t = 0; t + 2 < idx.length; t += 3) {
      var a = idx[t] * 3, b = idx[t + 1] * 3, c = idx[t + 2] * 3;
      var ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
      var vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
      var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      [a, b, c].forEach(function (k) { nrm[k] += nx; nrm[k + 1] += ny; nrm[k + 2] += nz; });
    }
    return nrm;
  }

  function primitives(glb) {
    var out = [];
    (glb.json.meshes || []).forEach(function (mesh) {
      mesh.primitives.forEach(function (p) {
        var mode = p.mode === undefined ? 4 : p.mode;
        if (mode !== 4 && mode !== 0) return;  // triangles and points only
        var pos = readAccessor(glb, p.attributes.POSITION, true).array;
        var count = pos.length / 3, idx;
        if (p.indices !== undefined) idx = readAccessor(glb, p.indices, false).array;
        else { idx = new Uint32Array(count); for (var i = 0; i < count; i++) idx[i] = i; }
        var nrm = p.attributes.NORMAL !== undefined ?
          readAccessor(glb, p.attributes.NORMAL, true).array :
          (mode === 4 ? vertexNormals(pos, idx) : new Float32Array(pos.length));
        var col = new Float32Array(count * 3).fill(0.8);
        if (p.attributes.COLOR_0 !== undefined) {
          var c = readAccessor(glb, p.attributes.COLOR_0, true);
          for (var v = 0; v < count; v++)
            for (var k = 0; k < 3; k++) col[v * 3 + k] = c.array[v * c.n + k];
        }
        out.push({mode: mode, pos: pos, nrm: nrm, col: col, idx: new Uint32Array(idx)});
      });
    });
    if (!out.length) throw new Error("the GLB holds no triangles or points");
    return out;
  }

  var VS = "attribute vec3 p; attribute vec3 n; attribute vec3 c; uniform mat4 mvp;" +
    "uniform mat3 rot; uniform float ps; varying vec3 vn; varying vec3 vc;" +
    "void main() { gl_Position = mvp * vec4(p, 1.0); gl_PointSize = ps;" +
    " vn = rot * n; vc = c; }";
  var FS = "precision mediump float; varying vec3 vn; varying vec3 vc; uniform float lit;" +
    "void main() { float l = length(vn) > 0.0 ? abs(dot(normalize(vn)," +
    " normalize(vec3(0.3, 0.5, 1.0)))) : 1.0;" +
    " gl_FragColor = vec4(vc * mix(1.0, 0.35 + 0.65 * l, lit), 1.0); }";

  function shader(gl, type, src) {
    var s = gl.createShader(type);
    gl.shaderSource(s, src); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }

  function multiply(a, b) {  // column-major 4x4
    var o = new Float32Array(16);
    for (var i = 0; i < 4; i++)
      for (var j = 0; j < 4; j++)
        for (var k = 0; k < 4; k++) o[j * 4 + i] += a[k * 4 + i] * b[j * 4 + k];
    return o;
  }

  function view(canvas, buffer) {
    var glb = parseGlb(buffer), prims = primitives(glb);
    var gl = canvas.getContext("webgl", {preserveDrawingBuffer: true, antialias: true});
    if (!gl) { canvas.dataset.state = "no-webgl"; throw new Error("WebGL is not available"); }
    if (!gl.getExtension("OES_element_index_uint")) throw new Error("no 32-bit indices");
    var prog = gl.createProgram();
    gl.attachShader(prog, shader(gl, gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, shader(gl, gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog); gl.useProgram(prog);
    var lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    var verts = 0, tris = 0, points = 0;
    prims.forEach(function (p) {
      for (var i = 0; i < p.pos.length; i++) {
        lo[i % 3] = Math.min(lo[i % 3], p.pos[i]); hi[i % 3] = Math.max(hi[i % 3], p.pos[i]);
      }
      verts += p.pos.length / 3;
      if (p.mode === 4) tris += p.idx.length / 3; else points += p.idx.length;
      p.buffers = ["pos", "nrm", "col"].map(function (key) {
        var b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b);
        gl.bufferData(gl.ARRAY_BUFFER, p[key], gl.STATIC_DRAW); return b;
      });
      p.ibo = gl.createBuffer(); gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, p.ibo);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, p.idx, gl.STATIC_DRAW);
    });
    var centre = [0, 1, 2].map(function (k) { return (lo[k] + hi[k]) / 2; });
    var radius = Math.max(1e-9, Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2);
    var yaw = parseFloat(canvas.dataset.yaw || "0.6"), dist = 2.6, frames = 0;
    var pitch = parseFloat(canvas.dataset.pitch || "0.35");
    var loc = ["p", "n", "c"].map(function (a) { return gl.getAttribLocation(prog, a); });
    function draw() {
      var w = canvas.width, h = canvas.height;
      gl.viewport(0, 0, w, h); gl.clearColor(1, 1, 1, 1); gl.enable(gl.DEPTH_TEST);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      var cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
      // rotation about y (yaw) then x (pitch), then the object centred and scaled to 1
      var r = [cy, sp * sy, -cp * sy, 0, 0, cp, sp, 0, sy, -sp * cy, cp * cy, 0, 0, 0, 0, 1];
      var s = 1 / radius, model = new Float32Array([s, 0, 0, 0, 0, s, 0, 0, 0, 0, s, 0,
        -centre[0] * s, -centre[1] * s, -centre[2] * s, 1]);
      var f = 1 / Math.tan(0.4), near = 0.05, far = 20, a = w / h;
      var proj = new Float32Array([f / a, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) /
        (near - far), -1, 0, 0, 2 * far * near / (near - far), 0]);
      var move = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -dist, 1]);
      var mvp = multiply(proj, multiply(move, multiply(r, model)));
      gl.uniformMatrix4fv(gl.getUniformLocation(prog, "mvp"), false, mvp);
      gl.uniformMatrix3fv(gl.getUniformLocation(prog, "rot"), false,
                          [r[0], r[1], r[2], r[4], r[5], r[6], r[8], r[9], r[10]]);
      gl.uniform1f(gl.getUniformLocation(prog, "ps"), 2.0);
      prims.forEach(function (p) {
        gl.uniform1f(gl.getUniformLocation(prog, "lit"), p.mode === 4 ? 1 : 0);
        p.buffers.forEach(function (b, k) {
          gl.bindBuffer(gl.ARRAY_BUFFER, b); gl.enableVertexAttribArray(loc[k]);
          gl.vertexAttribPointer(loc[k], 3, gl.FLOAT, false, 0, 0);
        });
        gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, p.ibo);
        gl.drawElements(p.mode === 4 ? gl.TRIANGLES : gl.POINTS, p.idx.length,
                        gl.UNSIGNED_INT, 0);
      });
      frames += 1;
      if (frames === 1) {
        var px = new Uint8Array(4);
        gl.readPixels(w >> 1, h >> 1, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
        Object.assign(canvas.dataset, {vertices: verts, triangles: tris, points: points,
                                       center: Array.from(px).join(","), state: "drawn"});
        console.log("polydiff-viewer drawn " + canvas.id);
      }
      canvas.dataset.frames = frames;
    }
    var last = null;
    canvas.addEventListener("mousedown", function (e) { last = [e.clientX, e.clientY]; });
    window.addEventListener("mouseup", function () { last = null; });
    window.addEventListener("mousemove", function (e) {
      if (!last) return;
      yaw += (e.clientX - last[0]) * 0.01;
      pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY]; requestAnimationFrame(draw);
    });
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault(); dist = Math.max(1.2, Math.min(10, dist * Math.exp(e.deltaY * 0.001)));
      requestAnimationFrame(draw);
    }, {passive: false});
    draw();
  }

  function decode(text) {
    var raw = atob(text.trim()), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  document.querySelectorAll("canvas[data-glb]").forEach(function (canvas) {
    try {
      view(canvas, decode(document.getElementById(canvas.dataset.glb).textContent));
    } catch (err) {
      if (canvas.dataset.state !== "no-webgl") canvas.dataset.state = "error";
      canvas.dataset.error = String(err.message || err);
      var note = document.createElement("p");
      note.className = "viewer-error";
      note.textContent = "3-D view unavailable: " + canvas.dataset.error;
      canvas.parentNode.insertBefore(note, canvas.nextSibling);
      console.log("polydiff-viewer error " + canvas.id + ": " + canvas.dataset.error);
    }
  });
})();
"""


def viewer_html(glb: bytes, element_id: str, *, width: int = 420, height: int = 320,
                label: str = "", yaw: float = 0.6, pitch: float = 0.35) -> str:
    """A ``<canvas>`` showing ``glb`` (bytes of a GLB file, embedded as base64), first seen
    from ``yaw`` and ``pitch`` (radians; 0, 0 looks along -z)."""
    data = base64.b64encode(glb).decode("ascii")
    name = html.escape(element_id, quote=True)
    return (f'<figure class="viewer"><canvas id="{name}" data-glb="{name}-data" '
            f'data-yaw="{yaw:g}" data-pitch="{pitch:g}" width="{width}" height="{height}" '
            f'title="drag to turn, wheel to zoom"></canvas>'
            f'<script type="application/octet-stream" id="{name}-data">{data}</script>'
            f'<figcaption>{html.escape(label)}</figcaption></figure>')


def viewer_script() -> str:
    """The ``<script>`` that draws every viewer of the page (place it once, at the end)."""
    return f"<script>{VIEWER_JS}</script>"


def point_cloud_glb(ply: Path, max_points: int = 60_000) -> bytes:
    """A coloured point cloud (PLY, as mono writes it) as GLB points, every k-th point."""
    import numpy as np
    import trimesh

    cloud = trimesh.load(ply, process=False)
    points = np.asarray(cloud.vertices, dtype=np.float32)
    colors = getattr(cloud, "colors", None)
    step = max(1, -(-len(points) // max_points))
    keep = slice(None, None, step)
    pc = trimesh.PointCloud(points[keep] * np.array([1, -1, -1], np.float32),  # OpenCV -> GL
                            colors=None if colors is None or not len(colors) else
                            np.asarray(colors)[keep])
    return trimesh.Scene(pc).export(file_type="glb")
