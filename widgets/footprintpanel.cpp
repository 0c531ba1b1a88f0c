#include "widgets/footprintpanel.h"

#include "core/plan/budget.h"
#include "core/plan/plan.h"
#include "widgets/formatting.h"
#include "widgets/tableutil.h"
#include "widgets/plandocument.h"
#include "widgets/plotutil.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListWidget>
#include <QMenu>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QToolButton>
#include <QVBoxLayout>
#include <qcustomplot.h>

namespace qs {

namespace {

constexpr double gib = 1024.0 * 1024.0 * 1024.0;

// "NVIDIA GeForce RTX 4090 24GB" -> "RTX 4090 24GB": the vendor is implied by the model name.
QString shortName(const GpuSpec& gpu)
{
    QString name = QString::fromStdString(gpu.name);
    for (const char* prefix : {"NVIDIA ", "GeForce ", "AMD ", "Radeon ", "Intel "})
        if (name.startsWith(QLatin1String(prefix)))
            name.remove(0, int(qstrlen(prefix)));
    return name;
}
const char* const defaultGpus[] = {"rtx-3060-12", "rtx-4090", "m4-max-128", "a100-80-sxm", "h100-sxm"};

} // namespace

FootprintPanel::FootprintPanel(PlanDocument* document, QWidget* parent) : QWidget(parent), m_document(document)
{
    try {
        m_catalog = GpuCatalog::load();
    } catch (const std::exception&) {
        // No catalogue installed: the panel still shows the plan's size.
    }
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_summary = new QLabel;
    m_summary->setObjectName(QStringLiteral("footprintSummary"));
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setWordWrap(true);
    layout->addWidget(m_summary);

    auto* form = new QFormLayout;
    m_context = new QSpinBox;
    m_context->setObjectName(QStringLiteral("footprintContext"));
    m_context->setRange(1, 10'000'000);
    m_context->setValue(4096);
    m_context->setSingleStep(1024);
    m_context->setSuffix(tr(" tokens"));
    form->addRow(tr("Context:"), m_context);
    m_batch = new QSpinBox;
    m_batch->setRange(1, 4096);
    m_batch->setValue(1);
    form->addRow(tr("Batch:"), m_batch);
    m_kvType = new QComboBox;
    for (auto type : {KvCacheType::F16, KvCacheType::BF16, KvCacheType::FP8, KvCacheType::Q8_0, KvCacheType::Q4_0})
        m_kvType->addItem(QString::fromLatin1(kvCacheTypeName(type)), int(type));
    form->addRow(tr("KV cache:"), m_kvType);
    m_runtime = new QComboBox;
    m_runtime->setObjectName(QStringLiteral("footprintRuntime"));
    for (auto rt : {Runtime::LlamaCpp, Runtime::Vllm, Runtime::Transformers})
        m_runtime->addItem(QString::fromLatin1(runtimeName(rt)), int(rt));
    m_options = new QToolButton;
    m_options->setObjectName(QStringLiteral("footprintOptions"));
    m_options->setText(tr("Options"));
    m_options->setToolTip(tr("The runtime's settings that change its memory (see docs/memory-model.md)"));
    m_options->setPopupMode(QToolButton::InstantPopup);
    auto* menu = new QMenu(m_options);
    const RuntimeSettings defaults;
    auto option = [&](const QString& text, const QString& tip, bool on) {
        QAction* a = menu->addAction(text);
        a->setCheckable(true);
        a->setChecked(on);
        a->setToolTip(tip);
        connect(a, &QAction::toggled, this, &FootprintPanel::refresh);
        return a;
    };
    menu->setToolTipsVisible(true);
    m_flashAttention = option(tr("Flash attention (-fa)"),
                              tr("llama.cpp: without it the compute buffer holds the KQ scores and an F32 mask, "
                                 "and the CUDA overhead is about 100 MiB higher"),
                              defaults.flashAttention);
    m_swaFull = option(tr("Full sliding-window cache (--swa-full)"),
                       tr("llama.cpp: sliding-window layers keep every cell (the C API's default) instead of "
                          "window + ubatch cells (llama-server and llama-cli)"),
                       defaults.swaFull);
    m_eager = option(tr("Eager attention (attn_implementation=\"eager\")"),
                     tr("transformers: explicit scores and a float32 softmax instead of SDPA"),
                     defaults.attnImpl == AttnImpl::Eager);
    m_padded = option(tr("Padded batch (attention mask)"),
                      tr("transformers: prompts of different lengths make generate() build a 4-D mask"),
                      defaults.paddedBatch);
    m_options->setMenu(menu);
    auto* runtimeRow = new QHBoxLayout;
    runtimeRow->addWidget(m_runtime, 1);
    runtimeRow->addWidget(m_options);
    form->addRow(tr("Runtime:"), runtimeRow);
    m_utilization = new QDoubleSpinBox;
    m_utilization->setObjectName(QStringLiteral("footprintUtilization"));
    m_utilization->setRange(0.05, 1.0);
    m_utilization->setSingleStep(0.05);
    m_utilization->setDecimals(2);
    m_utilization->setValue(defaults.gpuMemoryUtilization);
    m_utilization->setToolTip(tr("vLLM's --gpu-memory-utilization: the share of each GPU the engine takes at "
                                 "start-up; the KV cache fills what weights and activations leave of it"));
    form->addRow(tr("GPU share:"), m_utilization);
    m_gpuCount = new QSpinBox;
    m_gpuCount->setObjectName(QStringLiteral("footprintGpuCount"));
    m_gpuCount->setRange(1, 64);
    m_gpuCount->setToolTip(tr("GPUs the model is split across (tensor parallel): weights and KV cache are "
                              "shared out, each GPU pays the fixed overhead"));
    form->addRow(tr("GPUs per model:"), m_gpuCount);
    m_form = form;
    layout->addLayout(form);

    m_gpuList = new QListWidget;
    m_gpuList->setObjectName(QStringLiteral("footprintGpus"));
    m_gpuList->setMaximumHeight(110);
    m_gpuList->setToolTip(tr("GPUs to compare against (user additions: %1)")
                              .arg(QString::fromStdString(GpuCatalog::userCatalogPath().string())));
    for (const GpuSpec& gpu : m_catalog.gpus()) {
        auto* item = new QListWidgetItem(QStringLiteral("%1 (%2)").arg(QString::fromStdString(gpu.name),
                                                                        formatBytes(gpu.memoryBytes)),
                                         m_gpuList);
        item->setData(Qt::UserRole, QString::fromStdString(gpu.id));
        item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsUserCheckable);
        bool on = false;
        for (const char* id : defaultGpus)
            on = on || gpu.id == id;
        item->setCheckState(on ? Qt::Checked : Qt::Unchecked);
    }
    layout->addWidget(m_gpuList);

    m_plot = new QCustomPlot;
    m_plot->setObjectName(QStringLiteral("footprintPlot"));
    m_plot->setMinimumHeight(180);
    stylePlot(m_plot);
    // The GPU axis is categorical: its "zero line" (the first GPU's row) drew a stray line across the chart.
    m_plot->yAxis->grid()->setZeroLinePen(Qt::NoPen);
    m_plot->setInteractions(QCP::Interactions());
    m_plot->legend->setVisible(true);
    putLegendAbove(m_plot, 2);
    layout->addWidget(m_plot, 2);

    m_table = new QTableWidget;
    m_table->setObjectName(QStringLiteral("footprintTable"));
    m_table->setColumnCount(4);
    m_table->setHorizontalHeaderLabels({tr("GPU"), tr("Fits"), tr("Max context"), tr("Decode ≤")});
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    for (int c = 0; c < 4; ++c)
        m_table->horizontalHeader()->setSectionResizeMode(c, QHeaderView::ResizeToContents);
    layout->addWidget(m_table, 1);

    connect(m_document, &PlanDocument::planChanged, this, &FootprintPanel::refresh);
    connect(m_document, &PlanDocument::layoutChanged, this, [this] {
        const uint64_t trained = m_document->layout().config.contextLength;
        m_context->setValue(int(trained ? std::min<uint64_t>(trained, 4096) : 4096));
    });
    connect(m_context, &QSpinBox::valueChanged, this, &FootprintPanel::refresh);
    connect(m_batch, &QSpinBox::valueChanged, this, &FootprintPanel::refresh);
    connect(m_kvType, &QComboBox::currentIndexChanged, this, &FootprintPanel::refresh);
    connect(m_runtime, &QComboBox::currentIndexChanged, this, &FootprintPanel::refresh);
    connect(m_utilization, &QDoubleSpinBox::valueChanged, this, &FootprintPanel::refresh);
    connect(m_gpuCount, &QSpinBox::valueChanged, this, &FootprintPanel::refresh);
    connect(m_gpuList, &QListWidget::itemChanged, this, &FootprintPanel::refresh);
    refresh();
}

void FootprintPanel::setGpus(const QStringList& ids)
{
    const QSignalBlocker blocker(m_gpuList);
    for (int i = 0; i < m_gpuList->count(); ++i) {
        QListWidgetItem* item = m_gpuList->item(i);
        item->setCheckState(ids.contains(item->data(Qt::UserRole).toString()) ? Qt::Checked : Qt::Unchecked);
    }
    refresh();
}

QStringList FootprintPanel::gpus() const
{
    QStringList ids;
    for (int i = 0; i < m_gpuList->count(); ++i)
        if (m_gpuList->item(i)->checkState() == Qt::Checked)
            ids << m_gpuList->item(i)->data(Qt::UserRole).toString();
    return ids;
}

double FootprintPanel::bitsPerWeight() const
{
    return m_weights.parameters ? 8.0 * double(m_weights.bytes) / double(m_weights.parameters) : 0.0;
}

FootprintRequest FootprintPanel::request() const
{
    FootprintRequest r;
    r.context = uint64_t(m_context->value());
    r.batch = uint32_t(m_batch->value());
    r.kvType = KvCacheType(m_kvType->currentData().toInt());
    r.runtime.runtime = Runtime(m_runtime->currentData().toInt());
    r.runtime.flashAttention = m_flashAttention->isChecked();
    r.runtime.swaFull = m_swaFull->isChecked();
    r.runtime.attnImpl = m_eager->isChecked() ? AttnImpl::Eager : AttnImpl::Sdpa;
    r.runtime.paddedBatch = m_padded->isChecked();
    r.runtime.gpuMemoryUtilization = m_utilization->value();
    r.gpuCount = uint32_t(m_gpuCount->value());
    return r;
}

void FootprintPanel::showRuntimeSettings()
{
    const auto rt = Runtime(m_runtime->currentData().toInt());
    m_flashAttention->setVisible(rt == Runtime::LlamaCpp);
    m_swaFull->setVisible(rt == Runtime::LlamaCpp);
    m_eager->setVisible(rt == Runtime::Transformers);
    m_padded->setVisible(rt == Runtime::Transformers);
    m_options->setEnabled(rt != Runtime::Vllm);
    m_form->setRowVisible(m_utilization, rt == Runtime::Vllm);
}

void FootprintPanel::refresh()
{
    showRuntimeSettings();
    m_plot->clearPlottables();
    m_fits.clear();
    m_shownGpus.clear();
    m_table->setRowCount(0);
    const ModelLayout& layout = m_document->layout();
    if (layout.tensors.empty()) {
        m_summary->setText(tr("Open a model to plan its precision."));
        m_weights = {};
        m_plot->replot(QCustomPlot::rpQueuedReplot);
        return;
    }
    m_weights = summarizeWeights(layout, planBytesFn(m_document->plan()));
    const uint64_t stored = summarizeWeights(layout).bytes;
    m_summary->setText(tr("<b>Weights: %1</b> (stored %2, %3%) · <b>%4 bits per weight</b> · %5 parameters")
                           .arg(formatBytes(m_weights.bytes), formatBytes(stored))
                           .arg(stored ? 100.0 * double(m_weights.bytes) / double(stored) : 0.0, 0, 'f', 1)
                           .arg(bitsPerWeight(), 0, 'f', 2)
                           .arg(formatCount(m_weights.parameters)));

    try {
        const PlanErrorSummary e = planError(m_document->plan(), layout, m_errors);
        QString source;
        if (m_errors.empty() || e.measured == 0)
            source = tr("size proxy, no sensitivity measured");
        else if (e.missing + e.proxied > 0)
            source = tr("measured for %1 tensors, size proxy for %2").arg(e.measured).arg(e.missing + e.proxied);
        else
            source = tr("measured");
        // The sum over tensors of the squared weight error (importance-weighted where the sensitivity had an
        // importance matrix): only comparable between plans of the same model, lower is better.
        m_summary->setText(m_summary->text() +
                           tr("<br>Predicted error (%1): %2 — summed squared weight error, lower is better")
                               .arg(source, formatStat(e.error)));
        m_summary->setToolTip(
            tr("Predicted error: the sum over all planned tensors of the squared difference between the original "
               "and the quantized weights (importance-weighted when the sensitivity used an importance matrix), "
               "from the sensitivity matrix where measured, else from a size proxy. Use it to compare plans of "
               "this model; it is not a perplexity or KL figure."));
    } catch (const std::exception&) {
    }
    // A context beyond what the model was trained for runs (the memory is computed for it) but the output
    // degrades: say so where the number is chosen.
    const uint64_t trained = layout.config.contextLength;
    const bool beyond = trained > 0 && uint64_t(m_context->value()) > trained;
    if (beyond)
        m_summary->setText(m_summary->text() +
                           tr("<br><span style=\"color:#b00020\">Context %1 is beyond the model's trained context "
                              "of %2 tokens: quality degrades past it unless RoPE scaling is configured.</span>")
                               .arg(formatExact(uint64_t(m_context->value())), formatExact(trained)));
    m_context->setStyleSheet(beyond ? QStringLiteral("QSpinBox { color: #b00020; }") : QString());
    m_context->setToolTip(trained ? tr("The model was trained for %1 tokens of context.").arg(formatExact(trained))
                                  : QString());
    const FootprintRequest req = request();
    if (const Footprint host = estimateFootprint(layout, m_weights, req); host.hostWeightsBytes > 0)
        m_summary->setText(m_summary->text() +
                           tr("<br>Host memory: %1 (token embedding; %2 keeps it off the GPU)")
                               .arg(formatBytes(host.hostWeightsBytes),
                                    QString::fromLatin1(runtimeName(req.runtime.runtime))));
    const QStringList ids = gpus();
    QVector<double> ticks, weights, kv, overhead, budget;
    QVector<QString> labels;
    for (const QString& id : ids) {
        const GpuSpec* gpu = m_catalog.find(id.toStdString());
        if (!gpu)
            continue;
        GpuFit fit;
        try {
            fit = fitOnGpu(layout, m_weights, req, *gpu);
        } catch (const std::exception& e) {
            m_summary->setText(m_summary->text() + QStringLiteral("<br><span style='color:#a00'>%1</span>")
                                                       .arg(QString::fromStdString(e.what()).toHtmlEscaped()));
            break;
        }
        const int row = int(m_fits.size());
        m_fits.push_back(fit);
        m_shownGpus.push_back(gpu);
        ticks << double(row);
        labels << shortName(*gpu);
        weights << double(fit.footprint.weightsBytes) / gib;
        kv << double(fit.footprint.kvCacheBytes) / gib;
        overhead << double(fit.footprint.overheadBytes()) / gib;
        budget << double(fit.gpuBytes) / gib;

        m_table->insertRow(row);
        auto set = [&](int c, const QString& text, const QString& tip = {}) {
            setNumberTableCell(m_table, row, c, text, tip);
        };
        QStringList terms;
        for (const auto& term : fit.footprint.terms)
            terms << QStringLiteral("%1: %2 — %3").arg(QString::fromStdString(term.name), formatBytes(term.bytes),
                                                       QString::fromStdString(term.detail));
        set(0, shortName(*gpu), QString::fromStdString(gpu->name));
        auto* fits = new QTableWidgetItem(fit.fits ? tr("✓ %1 free").arg(formatBytes(uint64_t(fit.headroomBytes)))
                                                   : tr("✗ needs %1 GPUs").arg(fit.gpusNeeded));
        fits->setForeground(fit.fits ? QColor(30, 120, 50) : QColor(180, 40, 30));
        fits->setToolTip(tr("%1 of %2 usable\n%3")
                             .arg(formatBytes(fit.footprint.totalBytes()), formatBytes(fit.gpuBytes),
                                  terms.join(QLatin1Char('\n'))));
        m_table->setItem(row, 1, fits);
        set(2, formatExact(fit.maxContext));
        set(3, tr("%1 tok/s").arg(fit.maxDecodeTokensPerSecond, 0, 'f', 0),
            tr("Upper bound from memory bandwidth (%1 GB/s)").arg(gpu->bandwidthGBps));
    }

    // Stacked horizontal bars, the usable memory drawn behind each.
    auto* memory = new QCPBars(m_plot->yAxis, m_plot->xAxis);
    memory->setName(tr("usable GPU memory"));
    memory->setPen(QPen(QColor(150, 150, 150)));
    memory->setBrush(QColor(235, 235, 235));
    memory->setWidth(0.8);
    memory->setData(ticks, budget);
    struct Part {
        QString name;
        QColor color;
        const QVector<double>* values;
    };
    const Part parts[] = {{tr("weights"), seriesColor(0), &weights},
                          {tr("KV cache"), seriesColor(1), &kv},
                          {tr("overhead"), seriesColor(7), &overhead}};
    QCPBars* below = nullptr;
    for (const Part& p : parts) {
        auto* bars = new QCPBars(m_plot->yAxis, m_plot->xAxis);
        bars->setName(p.name);
        bars->setPen(Qt::NoPen);
        bars->setBrush(p.color);
        bars->setWidth(0.5);
        bars->setData(ticks, *p.values);
        if (below)
            bars->moveAbove(below);
        below = bars;
    }
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    ticker->addTicks(ticks, labels);
    m_plot->yAxis->setTicker(ticker);
    m_plot->yAxis->setRangeReversed(true);
    m_plot->yAxis->setRange(-0.6, double(std::max<qsizetype>(ticks.size(), 1)) - 0.4);
    double xMax = 1;
    for (qsizetype i = 0; i < ticks.size(); ++i)
        xMax = std::max({xMax, budget[i], weights[i] + kv[i] + overhead[i]});
    m_plot->xAxis->setRange(0, xMax * 1.05);
    m_plot->xAxis->setLabel(tr("GiB per GPU (context %1, batch %2)").arg(req.context).arg(req.batch));
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

QString FootprintPanel::summaryText() const { return m_summary->text(); }

void FootprintPanel::showRequest(const QString& gpuId, const FootprintRequest& r)
{
    {
        const QSignalBlocker a(m_context), b(m_batch), c(m_kvType), d(m_runtime), e(m_gpuList), f(m_flashAttention),
            g(m_swaFull), h(m_eager), i(m_padded), j(m_utilization), k(m_gpuCount);
        m_context->setValue(int(std::min<uint64_t>(r.context, uint64_t(m_context->maximum()))));
        m_batch->setValue(int(r.batch));
        m_kvType->setCurrentIndex(std::max(0, m_kvType->findData(int(r.kvType))));
        m_runtime->setCurrentIndex(std::max(0, m_runtime->findData(int(r.runtime.runtime))));
        m_flashAttention->setChecked(r.runtime.flashAttention);
        m_swaFull->setChecked(r.runtime.swaFull);
        m_eager->setChecked(r.runtime.attnImpl == AttnImpl::Eager);
        m_padded->setChecked(r.runtime.paddedBatch);
        m_utilization->setValue(r.runtime.gpuMemoryUtilization);
        m_gpuCount->setValue(int(std::clamp<uint32_t>(r.gpuCount, 1, 64)));
        for (int i = 0; i < m_gpuList->count(); ++i)
            if (m_gpuList->item(i)->data(Qt::UserRole).toString() == gpuId)
                m_gpuList->item(i)->setCheckState(Qt::Checked);
    }
    refresh();
}

void FootprintPanel::setErrorTable(ErrorTable errors)
{
    m_errors = std::move(errors);
    refresh();
}

} // namespace qs
