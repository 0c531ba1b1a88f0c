#pragma once
// A Q8_0 copy of a model written by the quantize job (every 2-D tensor whose rows hold whole 32-value blocks),
// for the GUI tests that compare or evaluate a quantized file against the original.

#include "core/model/model.h"
#include "core/quant/quantize.h"

#include <QString>
#include <memory>

inline qs::JobStatus writeQ8Copy(const std::shared_ptr<const qs::Model>& model, const QString& path)
{
    qs::QuantizeParams q;
    q.model = model;
    for (const auto& t : model->tensors())
        if (t.shape.size() == 2 && t.columns() % 32 == 0)
            q.plan.assign(t.name, "Q8_0");
    q.output = path.toStdString();
    qs::QuantizeJob job(q);
    return job.run();
}
