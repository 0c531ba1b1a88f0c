#pragma once
// A qs::JobControl whose progress the UI thread reads by polling (a QTimer at ~10 Hz), so worker threads
// never touch a QObject and a job may outlive the window that started it.

#include "core/util/job.h"

#include <QString>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace qs {

class PolledJobProgress {
public:
    PolledJobProgress()
        : m_job([this](double fraction, const std::string& stage) {
              m_fraction.store(fraction, std::memory_order_relaxed);
              std::lock_guard lock(m_mutex);
              m_stage = stage;
          })
    {
    }
    PolledJobProgress(const PolledJobProgress&) = delete;
    PolledJobProgress& operator=(const PolledJobProgress&) = delete;

    JobControl* job() { return &m_job; }
    void cancel() { m_job.cancel(); }
    bool cancelled() const { return m_job.cancelled(); }
    double fraction() const { return m_fraction.load(std::memory_order_relaxed); }
    QString stage() const
    {
        std::lock_guard lock(m_mutex);
        return QString::fromStdString(m_stage);
    }

private:
    JobControl m_job;
    std::atomic<double> m_fraction{0.0};
    mutable std::mutex m_mutex;
    std::string m_stage;
};

} // namespace qs
