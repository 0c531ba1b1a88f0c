#pragma once
// Plan files: versioned JSON (schema in docs/plan-schema.md), written atomically, and the autosave that lets
// the GUI offer to restore a plan after a crash.

#include "core/plan/plan.h"
#include "core/util/error.h"

#include <filesystem>
#include <optional>
#include <string>

namespace qs {

// Why a plan file was refused; PlanFileError::field()/offset() locate the problem.
enum class PlanErrorKind : uint8_t { Io, NotJson, NotAPlan, UnsupportedVersion, BadField };

class PlanFileError : public FormatError {
public:
    PlanFileError(PlanErrorKind kind, std::string file, std::string field, std::optional<uint64_t> offset,
                  std::string message);
    PlanErrorKind kind() const { return m_kind; }

private:
    PlanErrorKind m_kind;
};

// The version this build writes; it reads exactly this version (older versions would be migrated here).
constexpr int kPlanFormatVersion = 1;
// Limits of a plan file beyond its size (kMaxPlanFileBytes), checked before any list is converted: a plan
// names each tier once (there are fewer than 100 formats), rules are written by hand or by presets, and
// assignments are bounded by the tensors a model may have (kMaxTensorCount).
constexpr uint64_t kMaxPlanTiers = 256;
constexpr uint64_t kMaxPlanRules = 65536;
constexpr uint64_t kMaxPlanFiles = 65536; // model.file_sizes: one per shard

std::string planToJson(const Plan& plan);
// Throws PlanFileError. Unknown format names are kept (checkPlan reports them), unknown keys are ignored.
Plan planFromJson(const std::string& json, const std::string& fileName = {});

// Atomic, durable save (core/util/atomicfile.h: checked writes, fsync, rename; a crash or a full disk never
// leaves a half-written plan or loses the previous one). Throws PlanFileError(Io) with the reason.
void savePlan(const Plan& plan, const std::filesystem::path& path);
Plan loadPlan(const std::filesystem::path& path);

// Whether the plan was made for this model: same tensor and parameter counts (when recorded) and every
// assigned tensor present. `why`
// receives the first mismatch.
bool planMatchesModel(const Plan& plan, const ModelLayout& model, std::string* why = nullptr);

// ---- autosave ----
// Autosaves live in <generic data dir>/quantscope/autosave/ (e.g. ~/.local/share/quantscope/autosave), one
// file per key. The key is the saved plan's path, or the model's path for a plan never saved.
std::filesystem::path autosaveDirectory();
std::filesystem::path autosavePath(const std::string& key);
// Writes the plan to autosavePath(key) (atomically); returns the path.
std::filesystem::path writeAutosave(const Plan& plan, const std::string& key);
// The autosave for `key` when it exists and is newer than `savedPlan` (or savedPlan does not exist):
// what the GUI offers to restore at start-up.
std::optional<std::filesystem::path> newerAutosave(const std::string& key,
                                                   const std::filesystem::path& savedPlan = {});
// Removes the autosave (after a save, or when the user declines to restore).
void discardAutosave(const std::string& key);

} // namespace qs
