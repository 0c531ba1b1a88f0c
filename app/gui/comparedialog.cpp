#include "app/gui/comparedialog.h"

#include "app/gui/mainwindow.h"
#include "widgets/comparemodel.h"
#include "widgets/plotutil.h"

#include <QCheckBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>
#include <qcustomplot.h>

#include <algorithm>
#include <cmath>

namespace qs {

namespace {
constexpr size_t kBins = 101;
} // namespace

CompareDialog* CompareDialog::showFor(MainWindow* window)
{
    auto* dialog = window->findChild<CompareDialog*>();
    if (!dialog)
        dialog = new CompareDialog(window);
    dialog->refresh();
    dialog->show();
    dialog->raise();
    return dialog;
}

void CompareDialog::addAction(QMenu* menu, MainWindow* window)
{
    QAction* a = menu->addAction(tr("Compare &With…"), window, [window] { showFor(window); });
    a->setObjectName(QStringLiteral("compareWith"));
    a->setStatusTip(tr("Compare the open model with a quantized or converted copy, tensor by tensor"));
}

CompareDialog::CompareDialog(MainWindow* window)
    : QDialog(window), m_window(window), m_reference(new QLabel), m_candidate(new QLineEdit),
      m_run(new QPushButton(tr("Compare"))), m_stop(new QPushButton(tr("Stop"))), m_summary(new QLabel),
      m_model(new CompareModel(this)), m_proxy(new QSortFilterProxyModel(this)), m_table(new QTableView),
      m_plot(new QCustomPlot), m_logY(new QCheckBox(tr("Log scale"))), m_plotTitle(new QLabel)
{
    setObjectName(QStringLiteral("compareDialog"));
    setWindowTitle(tr("Compare Models"));
    m_candidate->setObjectName(QStringLiteral("candidate"));
    m_candidate->setPlaceholderText(tr("the quantized or converted copy: a file or a checkpoint folder"));
    auto* browse = new QPushButton(tr("Browse…"));
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString start = m_candidate->text().isEmpty() ? QFileInfo(m_window->modelPath()).absolutePath()
                                                            : m_candidate->text();
        const QString path = QFileDialog::getOpenFileName(
            this, tr("Compare With"), start,
            tr("Models (*.gguf *.safetensors *.json *.h5 *.keras);;All files (*)"));
        if (!path.isEmpty())
            setCandidate(path.endsWith(QLatin1String(".json")) || path.endsWith(QLatin1String(".safetensors"))
                             ? QFileInfo(path).absolutePath()
                             : path);
    });
    connect(m_run, &QPushButton::clicked, this, [this] { run(); });
    connect(m_stop, &QPushButton::clicked, this, &CompareDialog::cancelRun);
    m_stop->setEnabled(false);
    m_summary->setWordWrap(true);
    m_summary->setObjectName(QStringLiteral("compareSummary"));

    m_proxy->setSourceModel(m_model);
    m_proxy->setSortRole(CompareModel::SortRole);
    m_table->setModel(m_proxy);
    m_table->setSortingEnabled(true);
    m_table->sortByColumn(-1, Qt::AscendingOrder); // model order until the user sorts
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->verticalHeader()->hide();
    m_table->verticalHeader()->setDefaultSectionSize(m_table->fontMetrics().height() + 8);
    m_table->horizontalHeader()->setSectionResizeMode(CompareModel::NameColumn, QHeaderView::Stretch);
    m_table->setAlternatingRowColors(true);
    connect(m_table->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            [this](const QModelIndex& current) { showTensor(m_proxy->mapToSource(current).row()); });

    stylePlot(m_plot);
    m_plot->xAxis->setLabel(tr("quantized − original"));
    m_plot->yAxis->setLabel(tr("values"));
    m_plot->setMinimumHeight(180);
    connect(m_logY, &QCheckBox::toggled, this, [this] { showTensor(m_shownRow); });
    m_plotTitle->setObjectName(QStringLiteral("comparePlotTitle"));

    auto* top = new QHBoxLayout;
    top->addWidget(new QLabel(tr("Compare with:")));
    top->addWidget(m_candidate, 1);
    top->addWidget(browse);
    top->addWidget(m_run);
    top->addWidget(m_stop);
    auto* plotBox = new QWidget;
    auto* plotLayout = new QVBoxLayout(plotBox);
    plotLayout->setContentsMargins(0, 0, 0, 0);
    auto* plotBar = new QHBoxLayout;
    plotBar->addWidget(m_plotTitle, 1);
    plotBar->addWidget(m_logY);
    plotLayout->addLayout(plotBar);
    plotLayout->addWidget(m_plot, 1);
    auto* split = new QSplitter(Qt::Vertical);
    split->addWidget(m_table);
    split->addWidget(plotBox);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_reference);
    layout->addLayout(top);
    layout->addWidget(m_summary);
    layout->addWidget(split, 1);
    resize(900, 680);
    showTensor(-1);
}

void CompareDialog::setCandidate(const QString& path)
{
    m_candidate->setText(QDir::toNativeSeparators(path));
}

QString CompareDialog::candidate() const
{
    return m_candidate->text().trimmed();
}

QString CompareDialog::summaryText() const
{
    return m_summary->text();
}

void CompareDialog::refresh()
{
    const bool model = m_window->model() && m_window->model()->format() != ModelFormat::ConfigOnly;
    m_reference->setText(model ? tr("Original: <b>%1</b>").arg(QFileInfo(m_window->modelPath()).fileName().toHtmlEscaped())
                               : tr("Open a model with weights first: it is the original the copy is compared with."));
    m_run->setEnabled(model && !isRunning());
}

bool CompareDialog::run()
{
    const auto reference = m_window->model();
    if (isRunning() || !reference || reference->format() == ModelFormat::ConfigOnly)
        return false;
    const QString path = candidate();
    if (path.isEmpty()) {
        m_summary->setText(tr("Choose the model to compare with."));
        return false;
    }
    CompareParams params;
    params.reference = reference;
    params.candidatePath = QDir::fromNativeSeparators(path).toStdString();
    m_model->clear();
    showTensor(-1);
    m_job = std::make_shared<CompareJob>(std::move(params));
    m_handle = m_window->jobRunner()->start(m_job);
    connect(m_handle, &JobHandle::progressChanged, this, &CompareDialog::drain);
    connect(m_handle, &JobHandle::finished, this, &CompareDialog::onFinished);
    m_run->setEnabled(false);
    m_stop->setEnabled(true);
    m_status = tr("Comparing with %1…").arg(QFileInfo(path).fileName());
    updateSummary();
    return true;
}

void CompareDialog::cancelRun()
{
    if (m_handle)
        m_handle->cancel();
}

void CompareDialog::drain()
{
    if (!m_job)
        return;
    const bool first = m_model->rowCount() == 0;
    m_model->appendTensors(m_job->finishedTensors().take());
    if (first && m_model->rowCount() > 0 && !m_table->currentIndex().isValid())
        m_table->selectRow(0);
    updateSummary();
}

void CompareDialog::onFinished(JobStatus status, const QString& error)
{
    drain();
    m_handle = nullptr;
    m_job.reset();
    m_stop->setEnabled(false);
    refresh();
    if (status == JobStatus::Cancelled)
        m_status = tr("Stopped.");
    else if (status != JobStatus::Succeeded)
        m_status = tr("Could not compare: %1").arg(error);
    else
        m_status.clear();
    updateSummary();
    emit runFinished(status, error);
}

void CompareDialog::updateSummary()
{
    size_t compared = 0, identical = 0, failed = 0;
    const TensorComparison* worst = nullptr;
    for (const auto& t : m_model->tensors()) {
        if (!t.ok()) {
            ++failed;
            continue;
        }
        ++compared;
        if (t.metrics.mse == 0)
            ++identical;
        else if (!worst || t.metrics.sqnrDb < worst->metrics.sqnrDb)
            worst = &t;
    }
    QStringList parts;
    if (!m_status.isEmpty())
        parts << m_status;
    if (compared + failed > 0) {
        parts << tr("%n tensor(s) compared", nullptr, int(compared));
        if (identical > 0)
            parts << tr("%n identical", nullptr, int(identical));
        if (worst)
            parts << tr("lowest SQNR %1 dB (%2)").arg(worst->metrics.sqnrDb, 0, 'f', 2).arg(QString::fromStdString(worst->reference));
        if (failed > 0)
            parts << tr("%n not comparable (see the table)", nullptr, int(failed));
    }
    m_summary->setText(parts.join(QStringLiteral(" · ")));
}

void CompareDialog::showTensor(int row)
{
    m_shownRow = row;
    m_plot->clearPlottables();
    const TensorComparison* t = m_model->tensorAt(row);
    if (!t || !t->ok() || t->difference.empty()) {
        m_plotTitle->setText(t ? tr("%1: %2").arg(QString::fromStdString(t->reference),
                                                  t->ok() ? tr("no values") : QString::fromStdString(t->error))
                               : tr("Select a tensor to see the histogram of its difference."));
        m_plot->replot();
        return;
    }
    const double lo = t->differenceBounds.min, hi = t->differenceBounds.max;
    const BinnedHistogram h = lo < hi ? t->difference.linear(kBins, lo, hi, t->differenceBounds)
                                      : t->difference.linear(1, lo, hi, t->differenceBounds);
    QVector<double> x, y;
    double widest = 0, top = 0;
    for (size_t i = 0; i < h.counts.size(); ++i) {
        x << 0.5 * (h.edges[i] + h.edges[i + 1]);
        y << double(h.counts[i]);
        widest = std::max(widest, h.edges[i + 1] - h.edges[i]);
        top = std::max(top, double(h.counts[i]));
    }
    auto* bars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
    bars->setData(x, y, true);
    bars->setWidth(widest > 0 ? widest : 1e-9);
    bars->setPen(Qt::NoPen);
    bars->setBrush(seriesColor(0));
    const bool log = m_logY->isChecked();
    m_plot->yAxis->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (log)
        m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>::create());
    else
        m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
    const double pad = widest > 0 ? widest : std::max(std::abs(lo), 1e-6);
    m_plot->xAxis->setRange(h.edges.front() - pad, h.edges.back() + pad);
    m_plot->yAxis->setRange(log ? 0.5 : 0, top * (log ? 2 : 1.05));
    m_plotTitle->setText(tr("%1: %2 → %3, Δ from %4 to %5").arg(QString::fromStdString(t->reference),
                                                                 QString::fromStdString(t->referenceType),
                                                                 QString::fromStdString(t->candidateType))
                             .arg(lo, 0, 'g', 4)
                             .arg(hi, 0, 'g', 4));
    m_plot->replot();
}

} // namespace qs
