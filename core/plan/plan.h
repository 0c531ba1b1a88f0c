#pragma once
// A precision plan: which format every tensor of a model is stored in. Plans are plain values (copy,
// compare, assign) so that the GUI can keep snapshots for undo and compute footprints on every edit.
//
// Vocabulary: a *tier* is one column of the tier board, i.e. a format name ("Q4_K"); tiers are ordered from
// most to least precise. *Rules* map a name regex or a role to a format, first match wins. *Presets* build a
// whole plan in one step (llama.cpp's Q4_K_M / Q5_K_M / Q3_K_M mixes, "keep embeddings and head at 8 bits",
// all-X). Format names are those of core/quant/format.h (findFormat, case-insensitive).
//
// How the GUI uses it (tier board + footprint panel):
//   ModelLayout layout = layoutFromModel(*model);          // or openLayout(path) / layoutFromConfig(json)
//   Plan plan = makePreset("llama.cpp-Q4_K_M", layout);    // or load: loadPlan(path) + planMatchesModel
//   TierBoard board = tierBoard(plan, layout);             // columns of tensor indices, one per tier
//   // a drop of tensors onto tier k: one undo step holding the plan before and after
//   Plan before = plan; if (plan.assignMany(names, plan.tiers()[k])) undoStack.push(before, plan);
//   // footprint panel, on every change (cheap, no I/O)
//   WeightSummary w = summarizeWeights(layout, planBytesFn(plan));
//   GpuFit fit = fitOnGpu(layout, w, request, gpu);       // memory.h; bars: w / kv / overhead vs gpuBytes
//   PlanErrorSummary e = planError(plan, layout, table);  // budget.h, "predicted error"
//   std::vector<PlanIssue> issues = checkPlan(plan, layout); plan = applyFix(plan, issues[i].fixes[0]);
//   writeAutosave(plan, key) on a timer; newerAutosave(key, savedPath) at start-up (planio.h).

#include "core/plan/memory.h"
#include "core/plan/modellayout.h"
#include "core/plan/target.h"
#include "core/quant/method.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qs {

struct PlanRule {
    enum class Match : uint8_t { Regex, Role };
    Match match = Match::Regex;
    // Regex: ECMAScript, searched anywhere in the tensor name (anchor with ^...$). Role: a roleName()
    // identifier ("attn_v", "mlp_down", "embedding", "output_head", ...).
    std::string pattern;
    std::string format;
    bool operator==(const PlanRule&) const = default;
};

// Which model a plan was made for; loading warns (or refuses) when it does not match.
struct ModelIdentity {
    std::string path;
    std::string architecture;
    uint64_t tensorCount = 0;
    uint64_t parameterCount = 0;
    std::vector<uint64_t> fileSizes;
    bool operator==(const ModelIdentity&) const = default;
};
ModelIdentity identityOf(const ModelLayout& model);

class Plan {
public:
    Plan() : m_tiers(defaultTiers()) {}

    // BF16, Q8_0, Q6_K, Q4_K, INT4-g128-asym, Q3_K, Q2_K.
    static std::vector<std::string> defaultTiers();

    const std::vector<std::string>& tiers() const { return m_tiers; }
    // Methods of formats that are no longer tiers are dropped.
    void setTiers(std::vector<std::string> tiers);
    // Inserts a tier at index (clamped); no-op when present. Returns whether it changed.
    bool addTier(const std::string& format, size_t index = SIZE_MAX);
    // Removes a tier; tensors assigned to it keep their assignment (they show up as "outside the tiers").
    bool removeTier(const std::string& format);
    bool moveTier(size_t from, size_t to);
    // The method a tier's tensors are quantized with (RTN unless set). Keys are the tiers' format names;
    // setting a method for a format that is not a tier, or that the method cannot produce
    // (quantMethodProblem), throws qs::Error(BadValue). Removing a tier forgets its method.
    QuantMethod tierMethod(const std::string& format) const;
    bool setTierMethod(const std::string& format, QuantMethod method);
    const std::map<std::string, QuantMethod>& tierMethods() const { return m_tierMethods; }
    // The method of the tier holding the tensor's assigned format; RTN for unassigned tensors and for
    // formats outside the tiers.
    QuantMethod methodOf(const std::string& tensor) const;
    int tierIndex(const std::string& format) const; // -1 when not a tier (case-insensitive)

    const std::vector<PlanRule>& rules() const { return m_rules; }
    void setRules(std::vector<PlanRule> rules) { m_rules = std::move(rules); }

    // tensor name -> format name. Tensors without an entry keep their stored dtype.
    const std::map<std::string, std::string>& assignments() const { return m_assignments; }
    std::optional<std::string> formatOf(const std::string& tensor) const;
    // Each returns whether anything changed (a no-op edit should not become an undo step).
    bool assign(const std::string& tensor, const std::string& format);
    size_t assignMany(const std::vector<std::string>& tensors, const std::string& format);
    size_t assignMany(const std::map<std::string, std::string>& assignments);
    bool unassign(const std::string& tensor);
    void clearAssignments() { m_assignments.clear(); }

    const ModelIdentity& identity() const { return m_identity; }
    void setIdentity(ModelIdentity identity) { m_identity = std::move(identity); }
    // Preset the plan was built from ("llama.cpp-Q4_K_M"), informational.
    const std::string& preset() const { return m_preset; }
    void setPreset(std::string preset) { m_preset = std::move(preset); }
    // The tool the plan is made for (target.h); PlanJson = any. Saved as "target" in the plan JSON.
    ExportTarget target() const { return m_target; }
    void setTarget(ExportTarget target) { m_target = target; }

    bool operator==(const Plan&) const = default;

private:
    std::vector<std::string> m_tiers;
    std::map<std::string, QuantMethod> m_tierMethods; // only non-RTN entries, keyed by the tier's name
    std::vector<PlanRule> m_rules;
    std::map<std::string, std::string> m_assignments;
    ModelIdentity m_identity;
    std::string m_preset;
    ExportTarget m_target = ExportTarget::PlanJson;
};

// Applies rules to every plannable tensor (first matching rule wins); tensors no rule matches get
// `fallbackFormat` when it is non-empty and keep their current assignment otherwise. Every assignment is
// the format the tensor is stored in for `target` (storableFormat: llama.cpp's fallback for a ggml type
// whose block does not divide the row, ...); each substitution is described in `notes` when given.
// Throws qs::Error(BadValue) for an invalid regex, unknown role or unknown format, and when the target
// cannot express a rule's format (naming the tensor and the reason).
void applyRules(Plan& plan, const ModelLayout& model, const std::vector<PlanRule>& rules,
                const std::string& fallbackFormat = {}, ExportTarget target = ExportTarget::PlanJson,
                std::vector<std::string>* notes = nullptr);
// For each tensor of the model (same order as model.tensors): the index of the first rule that matches it,
// kNoRule for a plannable tensor no rule matches, kNotPlannable for norms, biases and the like. Validates
// the rules' patterns and formats (the rules editor previews with it).
inline constexpr int kNoRule = -1;
inline constexpr int kNotPlannable = -2;
std::vector<int> ruleMatches(const ModelLayout& model, const std::vector<PlanRule>& rules);
// Parses a rules file: JSON ({"rules": [{"regex"|"role": ..., "format": ...}]}) or text lines
// "REGEX=FORMAT" / "role:ROLE=FORMAT" ('#' comments, blank lines ignored).
std::vector<PlanRule> parseRules(const std::string& text, const std::string& fileName = {});

// The tiers a plan for `target` starts with: formats the target can express, most precise first
// (llama.cpp: BF16, Q8_0, Q6_K, Q5_K, Q4_K, IQ4_XS, Q3_K, Q2_K; GPTQModel: BF16 and INT8/4/3/2 groups;
// compressed-tensors and llm-compressor: BF16, FP8, INT8 and INT4). PlanJson: Plan::defaultTiers().
std::vector<std::string> defaultTiersFor(ExportTarget target);

// Presets. Names (case-insensitive): "llama.cpp-Q4_K_M", "llama.cpp-Q5_K_M", "llama.cpp-Q3_K_M" (also bare
// "Q4_K_M" ...), "keep-embeddings-8bit[:BASE]" (BASE default Q4_K; embeddings and head at Q8_0, INT8-ch-sym
// or FP8-E4M3-ch matching the base's family) and "all-FORMAT" ("all-Q4_K", "all-INT4-g128-asym").
std::vector<std::string> presetNames();
// Builds a plan for every plannable tensor, for `target` (llama.cpp's mixes with PlanJson are made for
// LlamaCpp, whose fused-group rules and tiers they follow): each tensor gets the format it is stored in
// (storableFormat; substitutions are described in `notes` when given). Throws qs::Error(BadValue) for
// unknown presets / formats, and when the target cannot express the preset (the message names the first
// tensor and the reason, e.g. "GPTQModel stores integer GPTQ weights only").
Plan makePreset(const std::string& name, const ModelLayout& model, ExportTarget target = ExportTarget::PlanJson,
                std::vector<std::string>* notes = nullptr);

// llama.cpp's choice for one tensor under an ftype mix (Q4_K_M, Q5_K_M, Q3_K_M), before the block-size
// fallback (llamaCppStoredType in target.h): our reading of llama_tensor_get_type (src/llama-quant.cpp).
// See docs/plan-schema.md#presets.
std::string llamaCppMixType(const std::string& ftype, const TensorInfo& tensor, const ModelLayout& model);

// Stored bytes of one tensor under the plan: the exact size of the format the tensor is stored in (the
// assigned format, or when that cannot hold the shape, storableFormat's substitute: llama.cpp's fallback
// for ggml types, BF16 for the others), or the stored bytes when unassigned or unknown.
uint64_t plannedBytes(const Plan& plan, const TensorInfo& tensor);
TensorBytesFn planBytesFn(const Plan& plan);

// The tier board's columns: for each tier (same order as plan.tiers()), the indices into model.tensors of
// the plannable tensors assigned to it; `otherFormats` holds tensors assigned to a format that is not a
// tier, `unassigned` plannable tensors without an assignment (they keep their stored type).
struct TierBoard {
    std::vector<std::vector<size_t>> columns;
    std::vector<size_t> otherFormats;
    std::vector<size_t> unassigned;
};
TierBoard tierBoard(const Plan& plan, const ModelLayout& model);

// ---- constraints ----

enum class PlanIssueKind : uint8_t {
    UnknownFormat,    // the assignment names no known format
    UnsupportedShape, // the format cannot store this shape (block size does not divide the row)
    FusedMismatch,    // tensors fused at run time (q/k/v, gate/up, a layer's experts) differ
    NotPlannable,     // an assignment to a norm, bias or missing tensor
    NotExpressible,   // the plan's target cannot express the format (GPTQModel and a ggml type, ...)
};
const char* planIssueKindName(PlanIssueKind kind);

// One click: apply `assignments` (tensor -> format; an empty format removes the assignment).
struct PlanFix {
    std::string label; // "Use Q5_0 (llama.cpp's fallback)", "Raise q/k/v of block 3 to Q6_K"
    std::map<std::string, std::string> assignments;
};

struct PlanIssue {
    PlanIssueKind kind;
    std::string message;
    std::vector<std::string> tensors;
    std::vector<PlanFix> fixes; // first is the recommended one
};

struct CheckOptions {
    bool fusedGroups = true; // vLLM-style exports need fused tensors to share a format
    ExportTarget target = ExportTarget::PlanJson; // formats are checked against what it can express
};
// The check options for a target: fused groups only where its runtime fuses (targetFusesGroups).
CheckOptions checkOptionsFor(ExportTarget target);
std::vector<PlanIssue> checkPlan(const Plan& plan, const ModelLayout& model,
                                 const CheckOptions& options = {});
// Returns the plan with the fix applied (plans are values: the caller pushes the old one on its undo stack).
Plan applyFix(Plan plan, const PlanFix& fix);

// Groups of tensors a runtime fuses into one kernel: "block 3 q/k/v", "block 3 gate/up", "block 3
// experts". Keys are stable labels, values tensor names.
std::map<std::string, std::vector<std::string>> fusedGroups(const ModelLayout& model);

} // namespace qs
