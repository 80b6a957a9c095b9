"""The VideoModel operator: CRD spec, planning, rendering and a thin kopf shell.

Layers (imports only point down):

- pure core, no I/O and no kopf/kubernetes/aiohttp: :mod:`.units`, :mod:`.spec` (the CR model),
  :mod:`.planning` (spec -> budget Plan), :mod:`.rendering` (``render(cr, plan)``),
  :mod:`.status` (conditions), :mod:`.crdgen` (CRD from the spec model), :mod:`.cli`;
- I/O seam: :mod:`.kube` (the few Kubernetes API calls, over aiohttp);
- orchestration without kopf: :mod:`.reconciling` (one level-based pass);
- the kopf shell and entry point: :mod:`.handlers`, :mod:`.main`.
"""
