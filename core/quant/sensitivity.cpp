#include "core/quant/sensitivity.h"

#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/quant/imatrix.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

namespace qs {

bool isSensitivityCandidate(const TensorInfo& t)
{
    const bool role = roleIsQuantizable(t.role.role) || t.role.role == TensorRole::Other;
    return role && t.shape.size() == 2 && t.shape[0] > 0 && t.shape[1] > 0 && dtypeInfo(t.dtype).decodable;
}

namespace {

struct FormatSlot {
    std::shared_ptr<const QuantFormat> format;
    ErrorAccumulator acc;
    std::string error;
};

class Runner {
public:
    Runner(const Model& model, const SensitivityOptions& options, const SensitivityCallback& onResult,
           JobControl* job)
        : m_model(model), m_options(options), m_onResult(onResult), m_job(job)
    {
        const auto names = options.formats.empty() ? defaultSensitivityFormats() : options.formats;
        for (const auto& n : names) {
            auto f = findFormat(n);
            if (!f)
                throw Error(ErrorCode::BadValue, "unknown quantization format '" + n + "'");
            m_formats.push_back(std::move(f));
        }
        for (const auto& t : model.tensors())
            if (isSensitivityCandidate(t) && (!options.tensorFilter || options.tensorFilter(t)))
                m_tensors.push_back(&t);
        for (const auto* t : m_tensors)
            m_totalWork += static_cast<double>(t->elements());
    }

    std::vector<SensitivityResult> run()
    {
        std::vector<std::vector<SensitivityResult>> perTensor(m_tensors.size());
        // Largest first, so that the last tensor a worker picks up is small.
        std::vector<size_t> order(m_tensors.size());
        std::iota(order.begin(), order.end(), size_t(0));
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return m_tensors[a]->elements() > m_tensors[b]->elements();
        });
        std::atomic<size_t> next{0};
        std::exception_ptr failure;
        std::mutex failureMutex;
        std::atomic<bool> stop{false};
        auto worker = [&] {
            try {
                for (;;) {
                    if (stop.load())
                        return;
                    const size_t i = next.fetch_add(1);
                    if (i >= order.size())
                        return;
                    perTensor[order[i]] = runTensor(*m_tensors[order[i]]);
                }
            } catch (...) {
                std::lock_guard lock(failureMutex);
                if (!failure)
                    failure = std::current_exception();
                stop.store(true);
            }
        };
        unsigned threads =
            m_options.threads ? m_options.threads : std::max(1u, std::thread::hardware_concurrency());
        threads = static_cast<unsigned>(std::min<size_t>(threads, std::max<size_t>(1, m_tensors.size())));
        if (threads <= 1) {
            worker();
        } else {
            std::vector<std::thread> pool;
            for (unsigned i = 0; i < threads; ++i)
                pool.emplace_back(worker);
            for (auto& t : pool)
                t.join();
        }
        if (failure)
            std::rethrow_exception(failure);
        reportProgress(m_job, 1.0, "sensitivity");
        std::vector<SensitivityResult> all;
        for (auto& v : perTensor)
            for (auto& r : v)
                all.push_back(std::move(r));
        return all;
    }

private:
    std::vector<SensitivityResult> runTensor(const TensorInfo& t)
    {
        const uint64_t rows = t.shape[0], cols = t.shape[1];
        std::span<const float> importance;
        if (m_options.importance)
            importance = m_options.importance->importanceFor(t.name, cols);
        const float* imp = importance.empty() ? nullptr : importance.data();
        const float* quantImp = m_options.importanceWeightedQuantization ? imp : nullptr;

        std::vector<FormatSlot> slots;
        bool needRange = false;
        uint64_t alignment = 1;
        for (const auto& f : m_formats) {
            FormatSlot s{f, {}, {}};
            if (!f->available())
                s.error = f->name() + " codec is not available in this build";
            else if (!f->supports(rows, cols) || !f->storedBytes(rows, cols))
                s.error = f->name() + " does not support a " + std::to_string(rows) + " x " +
                          std::to_string(cols) + " tensor";
            if (s.error.empty()) {
                needRange = needRange || f->needsTensorRange();
                alignment = std::lcm(alignment, std::max<uint64_t>(1, f->rowAlignment(cols)));
            }
            slots.push_back(std::move(s));
        }

        uint64_t chunkRows = std::max<uint64_t>(1, m_options.chunkElements / cols);
        chunkRows = std::max(alignment, chunkRows / alignment * alignment);
        chunkRows = std::min(chunkRows, rows);
        std::vector<float> src(chunkRows * cols), out(chunkRows * cols);

        TensorRange range;
        if (needRange) {
            for (uint64_t r = 0; r < rows; r += chunkRows) {
                checkCancel(m_job);
                const uint64_t n = std::min(chunkRows, rows - r);
                m_model.decodeRows(t, r, n, src.data());
                for (uint64_t i = 0; i < n * cols; ++i) {
                    range.min = std::min(range.min, src[i]);
                    range.max = std::max(range.max, src[i]);
                }
            }
        }
        // Each chunk is decoded once and round-tripped through every format.
        for (uint64_t r = 0; r < rows; r += chunkRows) {
            checkCancel(m_job);
            const uint64_t n = std::min(chunkRows, rows - r);
            m_model.decodeRows(t, r, n, src.data());
            for (auto& s : slots) {
                if (!s.error.empty())
                    continue;
                try {
                    s.format->roundTripChunk(src.data(), n, cols, out.data(), quantImp, range);
                } catch (const CancelledError&) {
                    throw;
                } catch (const std::exception& e) {
                    s.error = e.what();
                    continue;
                }
                s.acc.add(src.data(), out.data(), n, cols, imp);
            }
            addProgress(static_cast<double>(n * cols));
        }

        std::vector<SensitivityResult> results;
        for (auto& s : slots) {
            SensitivityResult res;
            res.tensor = t.name;
            res.format = s.format->name();
            res.rows = rows;
            res.cols = cols;
            res.error = s.error;
            if (s.error.empty()) {
                res.bytes = *s.format->storedBytes(rows, cols);
                res.bitsPerWeight = 8.0 * static_cast<double>(res.bytes) / static_cast<double>(rows * cols);
                res.metrics = s.acc.result();
            }
            results.push_back(std::move(res));
        }
        if (m_onResult) {
            std::lock_guard lock(m_callbackMutex);
            for (const auto& r : results)
                m_onResult(r);
        }
        return results;
    }

    void addProgress(double work)
    {
        if (!m_job || m_totalWork <= 0)
            return;
        std::lock_guard lock(m_progressMutex);
        m_doneWork += work;
        m_job->report(std::min(1.0, m_doneWork / m_totalWork), "sensitivity");
    }

    const Model& m_model;
    const SensitivityOptions& m_options;
    const SensitivityCallback& m_onResult;
    JobControl* m_job;
    std::vector<std::shared_ptr<const QuantFormat>> m_formats;
    std::vector<const TensorInfo*> m_tensors;
    double m_totalWork = 0;
    double m_doneWork = 0; // guarded by m_progressMutex
    std::mutex m_progressMutex;
    std::mutex m_callbackMutex; // serialises m_onResult
};

} // namespace

std::vector<SensitivityResult> computeSensitivity(const Model& model, const SensitivityOptions& options,
                                                  const SensitivityCallback& onResult, JobControl* job)
{
    return Runner(model, options, onResult, job).run();
}

} // namespace qs
