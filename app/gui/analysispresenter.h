#pragma once
// Feeds the plots with the statistics of the selection: the histogram overlays each selected tensor and
// each selected group (its members' statistics merged), the channel view follows the first selected
// tensor. Refreshes when the selection changes and when statistics the plots show arrive; says why a
// plot is empty (nothing selected, still analysing, no weights, a tensor that could not be decoded).

#include "core/model/model.h"

#include <QObject>
#include <memory>

namespace qs {

class ChannelView;
class HistogramView;
class SelectionHub;
class StatsStore;

class AnalysisPresenter final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(AnalysisPresenter)

public:
    AnalysisPresenter(StatsStore* stats, SelectionHub* selection, HistogramView* histogram,
                      ChannelView* channels, QObject* parent = nullptr);

    void setModel(std::shared_ptr<const Model> model);
    void refresh();

private:
    void refreshHistogram(const QString& waiting);
    void refreshChannels(const QString& waiting);

    StatsStore* m_stats = nullptr;
    SelectionHub* m_selection = nullptr;
    HistogramView* m_histogram = nullptr;
    ChannelView* m_channels = nullptr;
    std::shared_ptr<const Model> m_model;
};

} // namespace qs
