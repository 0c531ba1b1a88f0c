#pragma once
// Per-output-channel absmax and standard deviation of one tensor, in channel order or sorted by absmax,
// with outlier channels (absmax above k × the median channel absmax) highlighted: the channels that set
// a per-tensor or per-group scale and make quantization error explode.
//
// The second view, "Input activations", shows what the tensor's input looked like during calibration: per
// input channel the mean |x| (and RMS) from activation statistics (Analysis › Calibrate…, or a loaded .h5),
// or the RMS alone from an importance matrix, with the same outlier rule: the input channels that make AWQ's
// scaling worthwhile.

#include <QWidget>

#include <memory>
#include <vector>

class QCheckBox;
class QComboBox;
class QCPItemText;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QStackedWidget;

namespace qs {

struct ActivationStats;
class ImportanceMatrix;
struct TensorStats;

class ChannelView final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ChannelView)

public:
    explicit ChannelView(QWidget* parent = nullptr);
    ~ChannelView() override;

    // `note` is shown after the summary (e.g. "first of 3 selected tensors").
    void setTensor(const QString& label, std::shared_ptr<const TensorStats> stats, const QString& note = {});
    void setMessage(const QString& message);
    // A tensor whose weight statistics are not there (yet): the weights view shows `message`, the input
    // view still shows its activations.
    void setTensorMessage(const QString& label, const QString& message);
    void setSorted(bool sorted);
    void setOutlierFactor(double k);

    enum class Mode { Weights, InputActivations };
    void setMode(Mode mode);
    Mode mode() const;
    // The calibration data the input view reads (either may be null; stats win where both know a tensor);
    // `source` names them in the summary (e.g. the file or the calibration text).
    void setActivations(std::shared_ptr<const ActivationStats> stats,
                        std::shared_ptr<const ImportanceMatrix> importance, const QString& source);
    // Whether the input view has data for the current tensor.
    bool hasActivationsForTensor() const;

    QCustomPlot* plot() const { return m_plot; }
    // Channel indices flagged as outliers (in channel order), and the plotted order, for tests.
    const std::vector<size_t>& outliers() const { return m_outliers; }
    const std::vector<size_t>& order() const { return m_order; }
    QString summaryText() const;

public slots:
    void exportPlot();

private:
    void refresh();
    // The plotted series of the current mode: main (bars, outlier rule), second (line), and their names.
    struct Series {
        std::vector<float> main, second, extra; // extra: max |x| in the readout (may be empty)
        QString mainName, secondName, axis, unit;
        uint64_t length = 0; // values per channel (weights) or tokens (activations)
    };
    bool currentSeries(Series& s, QString& why) const;

    QString m_label;
    QString m_note;
    QString m_weightsMessage; // shown in the weights view when m_stats is null
    std::shared_ptr<const TensorStats> m_stats;
    std::shared_ptr<const ActivationStats> m_activations;
    std::shared_ptr<const ImportanceMatrix> m_importance;
    QString m_activationSource;
    Series m_series;
    std::vector<size_t> m_outliers;
    std::vector<size_t> m_order;
    double m_median = 0;

    QStackedWidget* m_stack = nullptr;
    QLabel* m_message = nullptr;
    QLabel* m_summary = nullptr;
    QCustomPlot* m_plot = nullptr;
    QComboBox* m_mode = nullptr;
    QCheckBox* m_sorted = nullptr;
    QDoubleSpinBox* m_factor = nullptr;
    QCPItemText* m_readout = nullptr;
};

} // namespace qs
