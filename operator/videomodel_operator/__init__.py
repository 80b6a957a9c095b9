"""The VideoModel operator: CRD spec, planning, rendering and a thin kopf shell.

Layers (imports only point down; pyproject.toml's import contracts check it, top to bottom
``main > handlers > reconciling > kube | cli > rendering | status | crdgen > planning | pods >
spec > units``, where modules joined by ``|`` do not import each other):

- pure core, no I/O and no kopf/kubernetes/aiohttp: :mod:`.units`, :mod:`.spec` (the CR model),
  then :mod:`.planning` (spec -> budget Plan) and :mod:`.pods` (why pods are not ready), then
  :mod:`.rendering` (``render(cr, plan)``), :mod:`.status` (conditions) and :mod:`.crdgen` (CRD
  from the spec model);
- over the core, side by side: :mod:`.kube`, the I/O seam (the few Kubernetes API calls, over
  aiohttp), and :mod:`.cli` (``videomodel plan / render / crd``, pure but for files);
- orchestration without kopf: :mod:`.reconciling` (one level-based pass);
- the kopf shell and entry point: :mod:`.handlers`, :mod:`.main`.
"""
