"""The matrix products of a compiled XLA program, and how fast they run on their own.

`program_dots(hlo)` lists every dot (and convolution) of an optimised HLO module with
its operand shapes and how often it runs: each computation is multiplied by how often
its callers run it, and a while loop's body by its trip count (XLA's known_trip_count
annotation; XLA's own cost analysis counts a loop body once). `matmul_flops` sums
2*M*N*K over them.

`dots_alone_seconds(dots)` times each distinct dot by itself (`lax.dot_general` with
the program's shapes and dimension numbers, median of `reps` calls, less the time of
an empty call) and adds them up with their counts. That is the time the program's
matrix products take at the program's own shapes, with nothing else around them: no
program made of these products can run faster, so flops / that time is the ceiling
of its matmul rate. Convolutions are counted in the FLOPs but not timed.
"""
from __future__ import annotations

import re
import time

_SHAPE = r'(?:f32|bf16|f16|f64|s32|u32|pred|u8)\[([\d,]*)\]'


def _dims(text):
  return tuple(int(d) for d in text.split(',') if d)


def _prod(xs):
  out = 1
  for x in xs:
    out *= x
  return out


def _attr(line, name):
  m = re.search(name + r'=\{([\d,]*)\}', line)
  return _dims(m.group(1)) if m else ()


def program_dots(hlo: str) -> list[dict]:
  """Every dot / convolution: {kind, out, lhs, rhs, dims, flops, count}.

  `dims` is ((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch)) for a dot
  (lax.dot_general's dimension numbers), None for a convolution. `count` is how often
  it runs per call of the program."""
  shapes = dict(re.findall(r'%([\w.\-]+) = ' + _SHAPE, hlo))  # instruction -> dims
  comps, name = {}, None
  for line in hlo.splitlines():
    m = re.match(r'^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$', line)
    if m:
      name = m.group(1)
      comps[name] = {'dots': [], 'calls': [], 'entry': line.startswith('ENTRY')}
      continue
    if name is None or ' = ' not in line:
      continue
    comp = comps[name]
    op = re.search(r'= ' + _SHAPE + r'\S* (dot|convolution)\(%([\w.\-]+), %([\w.\-]+)\)', line)
    if op:
      out = _dims(op.group(1))
      lhs, rhs = _dims(shapes[op.group(3)]), _dims(shapes[op.group(4)])
      if op.group(2) == 'dot':
        dims = ((_attr(line, 'lhs_contracting_dims'), _attr(line, 'rhs_contracting_dims')),
                (_attr(line, 'lhs_batch_dims'), _attr(line, 'rhs_batch_dims')))
        k = _prod(lhs[i] for i in dims[0][0])
      else:  # convolution: multiply-adds per output = kernel size / output features
        dims = None
        kernel_labels = re.search(r'dim_labels=\w+_(\w+)->', line).group(1)
        k = _prod(rhs) // rhs[kernel_labels.index('o')]
      comp['dots'].append({'kind': op.group(2), 'out': out, 'lhs': lhs, 'rhs': rhs,
                           'dims': dims, 'flops': 2.0 * _prod(out) * k})
    # XLA:GPU rewrites dots into cuBLAS calls: (result, workspace) = custom-call(lhs, rhs)
    gemm = re.search(r'= \(' + _SHAPE + r'.* custom-call\(%([\w.\-]+), %([\w.\-]+).*'
                     r'custom_call_target="__cublas\$(?:lt\$matmul|gemm)".*'
                     r'"lhs_contracting_dimensions":\[([\d",]*)\]', line)
    if gemm:
      lhs = _dims(shapes[gemm.group(2)])
      k = _prod(lhs[i] for i in _dims(gemm.group(4).replace('"', '')))
      out = _dims(gemm.group(1))
      comp['dots'].append({'kind': 'gemm', 'out': out, 'lhs': lhs,
                           'rhs': _dims(shapes[gemm.group(3)]), 'dims': None,
                           'flops': 2.0 * _prod(out) * k})
    trips = 1
    if ' while(' in line:
      t = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
      trips = int(t.group(1)) if t else 1
    for callee in re.findall(r'(?:body|calls|to_apply|branch_computations)=\{?%([\w.\-]+)', line):
      comp['calls'].append((callee, trips))

  runs = {}  # computation -> how often one call of the program runs it

  def visit(c, n):
    runs[c] = runs.get(c, 0) + n
    for callee, trips in comps[c]['calls']:
      if callee in comps:
        visit(callee, n * trips)

  for c, v in comps.items():
    if v['entry']:
      visit(c, 1)
  return [{**d, 'count': n} for c, n in runs.items() for d in comps[c]['dots']]


def matmul_flops(hlo: str) -> float:
  """2*M*N*K summed over the program's dots and convolutions, times how often each runs."""
  return sum(d['flops'] * d['count'] for d in program_dots(hlo))


def _median_call(fn, args, reps):
  import jax
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return sorted(times)[reps // 2]


def dots_alone_seconds(dots: list[dict], reps: int = 20) -> dict:
  """Time each distinct dot alone; {seconds, flops, empty_call_s, rows} where seconds
  is sum(count * time alone) over the dots and rows the per-shape table."""
  import jax
  import jax.numpy as jnp
  key = jax.random.PRNGKey(0)
  small = (jnp.ones((2, 2)), jnp.ones((2, 2)))
  empty = _median_call(jax.jit(lambda a, b: a[0, 0] + b[0, 0]), small, reps)
  table = {}
  for d in dots:
    if d['kind'] != 'dot':
      continue
    sig = (d['lhs'], d['rhs'], d['dims'])
    table.setdefault(sig, {'lhs': d['lhs'], 'rhs': d['rhs'], 'dims': d['dims'],
                           'flops': d['flops'], 'count': 0})['count'] += d['count']
  for row in table.values():
    lhs = jax.random.normal(key, row['lhs'], jnp.float32)
    rhs = jax.random.normal(key, row['rhs'], jnp.float32)
    dims = row['dims']
    fn = jax.jit(lambda a, b, dims=dims: jax.lax.dot_general(a, b, dims))
    row['seconds'] = max(_median_call(fn, (lhs, rhs), reps) - empty, 1e-7)
  rows = sorted(table.values(), key=lambda r: -r['seconds'] * r['count'])
  return {'seconds': sum(r['seconds'] * r['count'] for r in rows),
          'flops': sum(r['flops'] * r['count'] for r in rows), 'empty_call_s': empty,
          'rows': rows}
