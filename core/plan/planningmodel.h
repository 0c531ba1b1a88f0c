#pragma once
// What the workbench shows and plans for an opened model. A model opened from config.json alone has no
// tensors: the ones the checkpoint would have are derived from the architecture so that users can plan
// (footprint, tiers, exports) before downloading any weights; they carry no data, so no analysis.

#include "core/model/model.h"
#include "core/plan/modellayout.h"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace qs {

struct PlanningModel {
    std::shared_ptr<Model> model; // the opened model, or for ConfigOnly the derived one
    ModelLayout layout;
    // Set when a ConfigOnly model's tensors could not be derived: the model then stays as opened (no
    // tensors) and the layout is empty.
    std::string derivationError;
};

// Derives the planning model of OPENED, which was opened from PATH (the file or folder the user chose).
// Reads config.json again for a ConfigOnly model (milliseconds); never throws for a derivation failure.
PlanningModel makePlanningModel(std::shared_ptr<Model> opened, const std::filesystem::path& path);

// The tensor to show first when a model opens: the first quantizable weight of the first block, else the
// largest tensor. Empty for a model without tensors.
std::optional<size_t> firstTensorToShow(const Model& model);

} // namespace qs
