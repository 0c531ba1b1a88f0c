#include "core/infer/methodcompare.h"

#include "core/model/model.h"
#include "core/quant/quantize.h"
#include "core/util/error.h"

#include <random>

namespace qs {

namespace {

namespace fs = std::filesystem;

// A JobControl for one step of the comparison: its progress lands in [from, to) of the parent's, and the
// parent's cancel reaches it at its next report.
class StepControl {
public:
    StepControl(JobControl* parent, double from, double to, std::string label)
        : m_parent(parent), m_from(from), m_to(to), m_label(std::move(label))
    {
        m_control.setProgressHandler([this](const JobProgress& p) {
            if (!m_parent)
                return;
            if (m_parent->cancelled())
                m_control.cancel();
            m_parent->report(m_from + (m_to - m_from) * p.fraction,
                             p.stage.empty() ? m_label : m_label + ": " + p.stage);
        });
        if (m_parent && m_parent->cancelled())
            m_control.cancel();
    }
    JobControl& control() { return m_control; }

private:
    JobControl* m_parent;
    double m_from, m_to;
    std::string m_label;
    JobControl m_control;
};

// A private folder removed with everything in it when the comparison ends.
class ScratchDir {
public:
    explicit ScratchDir(const fs::path& parent)
    {
        std::random_device rd;
        for (int attempt = 0; attempt < 16; ++attempt) {
            fs::path p = parent / ("quantscope-compare-" + std::to_string(rd()));
            std::error_code ec;
            if (fs::create_directory(p, ec)) {
                m_path = p;
                return;
            }
        }
        throw Error(ErrorCode::Io, "cannot create a temporary folder in " + parent.string());
    }
    ~ScratchDir()
    {
        std::error_code ec;
        fs::remove_all(m_path, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

} // namespace

MethodComparisonResult compareMethods(const MethodComparisonParams& params, JobControl* job)
{
    if (!params.model)
        throw Error(ErrorCode::BadValue, "no model to compare methods on");
    if (params.methods.empty())
        throw Error(ErrorCode::BadValue, "no method to compare");
    const bool gguf = params.model->format() == ModelFormat::Gguf;
    if (!gguf && params.model->format() != ModelFormat::Safetensors)
        throw Error(ErrorCode::Unsupported, std::string("comparing methods needs a GGUF or safetensors model, not ") +
                                                modelFormatName(params.model->format()));
    MethodComparisonResult result;
    const QuantizeTarget target = gguf ? QuantizeTarget::Gguf : QuantizeTarget::FakeQuant;
    result.target = quantizeTargetName(target);
    result.baseline = params.baseline;

    // Every tier quantized with the method under test.
    Plan plan = params.plan;
    for (const auto& [format, method] : params.plan.tierMethods())
        plan.setTierMethod(format, QuantMethod::Rtn);

    const ScratchDir scratch(params.workDir.empty() ? fs::temp_directory_path() : params.workDir);
    const double share = 1.0 / double(params.methods.size());
    for (size_t i = 0; i < params.methods.size(); ++i) {
        checkCancel(job);
        MethodOutcome outcome;
        outcome.method = params.methods[i];
        const std::string label = quantMethodLabel(outcome.method);
        QuantizeParams q;
        q.model = params.model;
        q.plan = plan;
        q.target = target;
        q.output = scratch.path() / (std::string(quantMethodName(outcome.method)) + (gguf ? ".gguf" : ""));
        q.threads = params.threads;
        q.allowRequantize = params.allowRequantize;
        q.method = outcome.method;
        if (outcome.method != QuantMethod::Rtn) {
            q.calibrationFile = params.calibrationFile;
            q.calibrationChunks = params.calibrationChunks;
            q.calibrationCtx = params.calibrationCtx;
        }
        std::string refused;
        for (const QuantizeProblem& p : validateQuantize(q))
            refused += (refused.empty() ? "" : "; ") + p.toString();
        if (!refused.empty()) {
            outcome.error = refused;
            result.outcomes.push_back(std::move(outcome));
            continue;
        }
        const double from = double(i) * share;
        QuantizeJob quantize(q);
        StepControl qStep(job, from, from + share * 0.6, label + ": quantizing");
        // The nested job polls its own control: its reports carry the parent's cancel back to it.
        quantize.control().setProgressHandler([&](const JobProgress& p) {
            qStep.control().report(p.fraction, p.stage);
            if (qStep.control().cancelled())
                quantize.cancel();
        });
        const JobStatus status = quantize.run();
        if (status == JobStatus::Cancelled || (job && job->cancelled()))
            throw CancelledError();
        if (status != JobStatus::Succeeded) {
            outcome.error = "quantizing failed: " + quantize.errorMessage();
            result.outcomes.push_back(std::move(outcome));
            continue;
        }
        outcome.quantizeSeconds = quantize.result().seconds;
        outcome.weightBytes = quantize.result().weightBytesWritten;

        EvalParams e;
        e.model = params.model;
        e.plan = plan;
        e.quantizedModel = openModel(q.output);
        e.text = params.text;
        e.textFile = params.textFile;
        e.ctx = params.ctx;
        e.maxChunks = params.maxChunks;
        e.llamaCppActivations = params.llamaCppActivations;
        e.threads = params.threads;
        e.baseline = result.baseline;
        StepControl eStep(job, from + share * 0.6, from + share, label + ": evaluating");
        outcome.eval = evaluate(e, &eStep.control());
        result.baseline = outcome.eval.baseline;
        e.quantizedModel.reset(); // unmap before the folder goes
        std::error_code ec;
        fs::remove_all(q.output, ec);
        result.outcomes.push_back(std::move(outcome));
    }
    reportProgress(job, 1.0, "done");
    return result;
}

MethodComparisonJob::MethodComparisonJob(MethodComparisonParams params)
    : BasicJob("Comparing methods", std::move(params))
{
}

void MethodComparisonJob::execute(JobControl& control)
{
    m_result = compareMethods(m_params, &control);
}

} // namespace qs
