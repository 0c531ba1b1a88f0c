#include "core/util/job.h"

#include "core/util/error.h"

namespace qs {

void JobControl::throwIfCancelled() const
{
    if (cancelled())
        throw CancelledError();
}

void JobControl::report(double fraction, const std::string& stage)
{
    if (!m_handler)
        return;
    std::lock_guard lock(m_mutex);
    m_handler(fraction, stage);
}

} // namespace qs
