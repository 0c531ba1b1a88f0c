#include "app/gui/analysispresenter.h"

#include "core/stats/stats.h"
#include "widgets/channelview.h"
#include "widgets/formatting.h"
#include "widgets/histogramview.h"
#include "widgets/selectionhub.h"
#include "widgets/statsstore.h"

namespace qs {

namespace {
constexpr int maxOverlaySeries = 8;
}

AnalysisPresenter::AnalysisPresenter(StatsStore* stats, SelectionHub* selection, HistogramView* histogram,
                                     ChannelView* channels, QObject* parent)
    : QObject(parent), m_stats(stats), m_selection(selection), m_histogram(histogram), m_channels(channels)
{
    connect(m_selection, &SelectionHub::selectionChanged, this, &AnalysisPresenter::refresh);
    // Started: the plots say "Analysing…" where statistics are still to come.
    connect(m_stats, &StatsStore::started, this, &AnalysisPresenter::refresh);
    connect(m_stats, &StatsStore::finished, this, &AnalysisPresenter::refresh);
    connect(m_stats, &StatsStore::tensorsReady, this, [this](const std::vector<size_t>& indices) {
        // Refresh the plots only when something they show has arrived.
        if (!m_model)
            return;
        for (size_t i : indices) {
            if (m_selection->shows(QString::fromStdString(m_model->tensors()[i].name))) {
                refresh();
                return;
            }
        }
    });
}

void AnalysisPresenter::setModel(std::shared_ptr<const Model> model)
{
    m_model = std::move(model);
    m_histogram->setModel(m_model);
    refresh();
}

void AnalysisPresenter::refresh()
{
    if (!m_model) {
        m_histogram->setMessage(tr("Open a model to see the value distributions of its tensors."));
        m_channels->setMessage(tr("Open a model to see per-channel statistics."));
        return;
    }
    const QString waiting =
        m_model->format() == ModelFormat::ConfigOnly
            ? tr("Opened from config.json alone: there are no weights to analyse (planning works).")
        : m_stats->isRunning() ? tr("Analysing… statistics appear as soon as this tensor is done.")
                               : tr("No statistics yet: run Analysis › Analyse Model (Ctrl+R).");
    refreshHistogram(waiting);
    refreshChannels(waiting);
}

void AnalysisPresenter::refreshHistogram(const QString& waiting)
{
    std::vector<HistogramView::Series> series;
    QStringList failures;
    for (const SelectionHub::Group& group : m_selection->groups()) {
        std::vector<std::shared_ptr<const TensorStats>> parts; // keeps raw's pointees alive
        std::vector<const TensorStats*> raw;
        bool complete = true;
        for (const QString& name : group.members) {
            const int index = m_stats->tensorIndex(name);
            auto s = index >= 0 ? m_stats->shared(size_t(index)) : nullptr;
            if (!s) {
                complete = false;
                break;
            }
            if (s->error.empty() && s->finite > 0) {
                raw.push_back(s.get());
                parts.push_back(std::move(s));
            }
        }
        if (!complete || raw.empty())
            continue; // a group is drawn once all its members are in
        auto merged = std::make_shared<TensorStats>(mergeStats(raw));
        series.push_back(
            {tr("%1 (%2 merged)").arg(group.title, countNoun(raw.size(), "tensor", "tensors")), merged, -1});
    }
    for (const QString& name : m_selection->names()) {
        if (series.size() >= size_t(maxOverlaySeries))
            break;
        const int index = m_stats->tensorIndex(name);
        auto s = index >= 0 ? m_stats->shared(size_t(index)) : nullptr;
        if (s && !s->error.empty())
            failures << QStringLiteral("%1: %2").arg(name, QString::fromStdString(s->error));
        else if (s)
            series.push_back({name, s, index});
    }
    if (!series.empty())
        m_histogram->setSeries(std::move(series));
    else if (m_selection->names().isEmpty() && m_selection->groups().empty())
        m_histogram->setMessage(tr("Select one or more tensors — or a whole group such as a block — in the "
                                   "tree, the statistics table or the depth overview."));
    else if (!failures.isEmpty())
        m_histogram->setMessage(failures.join(QLatin1Char('\n')));
    else
        m_histogram->setMessage(waiting);
}

void AnalysisPresenter::refreshChannels(const QString& waiting)
{
    const QStringList names = m_selection->names();
    if (names.isEmpty()) {
        m_channels->setMessage(tr("Select a tensor to see its per-channel absmax and standard deviation."));
        return;
    }
    const QString& name = names.front();
    const int index = m_stats->tensorIndex(name);
    auto s = index >= 0 ? m_stats->shared(size_t(index)) : nullptr;
    if (!s)
        m_channels->setTensorMessage(name, waiting);
    else if (!s->error.empty())
        m_channels->setTensorMessage(name, QString::fromStdString(s->error));
    else
        m_channels->setTensor(name, s,
                              names.size() > 1 ? tr("the first of %1 selected tensors (one tensor at a time here)")
                                                     .arg(names.size())
                                               : QString());
}

} // namespace qs
