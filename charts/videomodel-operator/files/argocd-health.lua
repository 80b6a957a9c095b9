-- Argo CD health check for videomodel.io/VideoModel.
-- Install it in argocd-cm under resource.customizations.health.videomodel.io_VideoModel
-- (see the chart's README). It reads only the operator's status conditions:
--   Stalled=True    this generation cannot be applied (invalid, infeasible, refused, not owner)
--   Degraded=True   a human is needed (deadline exceeded, replica failure, a pod says why)
--   Ready=True      the current generation runs on every desired replica
--   Ready=False/ScaledToZero   spec.replicas is 0
-- Anything else, or a status older than the spec, is Progressing.
-- The first rule that matches decides (one rule a line: the tests read this table).
local rules = {
  {type = "Stalled", status = "True", health = "Degraded"},
  {type = "Degraded", status = "True", health = "Degraded"},
  {type = "Ready", status = "True", health = "Healthy"},
  {type = "Ready", reason = "ScaledToZero", health = "Suspended"},
}

local hs = {status = "Progressing", message = "Waiting for the operator to report status"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local byType = {}
for _, condition in ipairs(obj.status.conditions) do
  byType[condition.type] = condition
end
for _, rule in ipairs(rules) do
  local condition = byType[rule.type]
  if condition ~= nil
    and (rule.status == nil or condition.status == rule.status)
    and (rule.reason == nil or condition.reason == rule.reason) then
    hs.status = rule.health
    hs.message = condition.message or ""
    return hs
  end
end
if byType.Ready ~= nil and byType.Ready.message ~= nil then
  hs.message = byType.Ready.message
end
return hs
