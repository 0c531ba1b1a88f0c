#include "core/plan/planningmodel.h"

#include "core/model/tensorrole.h"

#include <exception>

namespace qs {

PlanningModel makePlanningModel(std::shared_ptr<Model> opened, const std::filesystem::path& path)
{
    PlanningModel out;
    if (!opened)
        return out;
    if (opened->format() != ModelFormat::ConfigOnly) {
        out.layout = layoutFromModel(*opened);
        out.model = std::move(opened);
        return out;
    }
    try {
        ModelLayout layout = openLayout(path);
        auto derived = std::make_shared<Model>(ModelFormat::ConfigOnly, opened->path());
        for (const TensorInfo& t : layout.tensors)
            derived->addTensor(t);
        derived->mutableConfig() = layout.config;
        derived->mutableMetadata() = opened->metadata();
        for (const auto& w : opened->warnings())
            derived->addWarning(w);
        derived->finalize();
        out.model = std::move(derived);
        out.layout = std::move(layout);
    } catch (const std::exception& e) {
        out.model = std::move(opened);
        out.derivationError = e.what();
    }
    return out;
}

std::optional<size_t> firstTensorToShow(const Model& model)
{
    const auto& tensors = model.tensors();
    if (tensors.empty())
        return std::nullopt;
    for (size_t i = 0; i < tensors.size(); ++i)
        if (tensors[i].role.block >= 0 && roleIsQuantizable(tensors[i].role.role))
            return i;
    size_t largest = 0;
    for (size_t i = 1; i < tensors.size(); ++i)
        if (tensors[i].bytes > tensors[largest].bytes)
            largest = i;
    return largest;
}

} // namespace qs
