#include "app/gui/gpufitpanel.h"

#include "core/plan/target.h"
#include "widgets/footprintpanel.h"
#include "widgets/formatting.h"
#include "widgets/tableutil.h"
#include "widgets/jobrunner.h"
#include "widgets/plandocument.h"

#include <QComboBox>
#include <QFormLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

namespace qs {

GpuFitPanel::GpuFitPanel(PlanDocument* plan, JobRunner* runner, BudgetProblem problem,
                         const FootprintPanel* footprint, QWidget* parent)
    : QWidget(parent), m_plan(plan), m_runner(runner), m_problem(std::move(problem))
{
    setObjectName(QStringLiteral("gpuFitPanel"));
    try {
        m_catalog = GpuCatalog::load();
    } catch (const std::exception&) {
        // No catalogue: the GPU list stays empty and Compute says so.
    }
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("Choose every tensor's tier and the KV-cache type together so that the model, "
                                "its cache and the runtime fit the GPU at this context. A coarser cache is "
                                "chosen only when it lowers the predicted weight error by at least 10%."));
    intro->setWordWrap(true);
    layout->addWidget(intro);
    auto* form = new QFormLayout;
    m_gpu = new QComboBox;
    m_gpu->setObjectName(QStringLiteral("gpuFitGpu"));
    for (const GpuSpec& g : m_catalog.gpus())
        m_gpu->addItem(QStringLiteral("%1 (%2)").arg(QString::fromStdString(g.name), formatBytes(g.usableBytes())),
                       QString::fromStdString(g.id));
    form->addRow(tr("GPU:"), m_gpu);
    m_context = new QSpinBox;
    m_context->setObjectName(QStringLiteral("gpuFitContext"));
    m_context->setRange(1, 10'000'000);
    m_context->setSingleStep(1024);
    m_context->setSuffix(tr(" tokens"));
    m_context->setValue(4096);
    form->addRow(tr("Context:"), m_context);
    m_batch = new QSpinBox;
    m_batch->setRange(1, 4096);
    form->addRow(tr("Batch:"), m_batch);
    m_runtime = new QComboBox;
    for (auto rt : {Runtime::LlamaCpp, Runtime::Vllm, Runtime::Transformers})
        m_runtime->addItem(QString::fromLatin1(runtimeName(rt)), int(rt));
    form->addRow(tr("Runtime:"), m_runtime);
    m_kv = new QComboBox;
    m_kv->setObjectName(QStringLiteral("gpuFitKv"));
    form->addRow(tr("KV cache:"), m_kv);
    layout->addLayout(form);
    auto fillKv = [this] {
        const Runtime rt = Runtime(m_runtime->currentData().toInt());
        m_kv->clear();
        m_kv->addItem(tr("auto"), -1);
        for (KvCacheType t : kvCandidates(rt))
            m_kv->addItem(QString::fromLatin1(kvCacheTypeName(t)), int(t));
    };
    connect(m_runtime, &QComboBox::currentIndexChanged, this, fillKv);
    // Start from what the footprint panel shows, and the runtime that runs the plan's target.
    if (targetFusesGroups(plan->plan().target()))
        m_runtime->setCurrentIndex(m_runtime->findData(int(Runtime::Vllm)));
    if (footprint) {
        const FootprintRequest r = footprint->currentRequest();
        m_context->setValue(int(std::min<uint64_t>(r.context, 10'000'000)));
        m_batch->setValue(int(r.batch));
        m_runtime->setCurrentIndex(m_runtime->findData(int(r.runtime.runtime)));
        const QStringList ids = footprint->gpus();
        if (!ids.isEmpty())
            m_gpu->setCurrentIndex(std::max(0, m_gpu->findData(ids.front())));
    }
    fillKv();
    m_computeButton = new QPushButton(tr("Compute"));
    m_computeButton->setObjectName(QStringLiteral("gpuFitCompute"));
    connect(m_computeButton, &QPushButton::clicked, this, &GpuFitPanel::compute);
    layout->addWidget(m_computeButton, 0, Qt::AlignLeft);
    m_table = new QTableWidget;
    m_table->setObjectName(QStringLiteral("gpuFitTable"));
    m_table->setColumnCount(6);
    m_table->setHorizontalHeaderLabels(
        {tr("KV cache"), tr("Fits"), tr("Predicted error"), tr("Gap"), tr("Weights"), tr("Max context")});
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    layout->addWidget(m_table, 1);
    m_summary = new QLabel;
    m_summary->setObjectName(QStringLiteral("gpuFitSummary"));
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_summary);
    // The problem was built for this model.
    connect(m_plan, &PlanDocument::layoutChanged, this, [this] {
        if (m_handle)
            m_handle->cancel();
    });
}

void GpuFitPanel::compute()
{
    if (m_handle)
        return;
    const GpuSpec* gpu = m_catalog.find(m_gpu->currentData().toString().toStdString());
    if (!gpu) {
        m_summary->setText(tr("No GPU catalogue is installed."));
        return;
    }
    m_request = {};
    m_request.footprint.context = uint64_t(m_context->value());
    m_request.footprint.batch = uint32_t(m_batch->value());
    m_request.footprint.runtime.runtime = Runtime(m_runtime->currentData().toInt());
    m_request.footprint.gpuArchitecture = gpu->architecture;
    if (m_kv->currentData().toInt() >= 0)
        m_request.kvTypes = {KvCacheType(m_kv->currentData().toInt())};
    m_gpuId = QString::fromStdString(gpu->id);
    m_result.reset();
    m_table->setRowCount(0);
    m_summary->setText(tr("Fitting…"));
    m_computeButton->setEnabled(false);
    m_job = std::make_shared<GpuFitJob>(
        GpuFitParams{m_problem, m_plan->plan(), m_plan->layout(), *gpu, m_request});
    m_handle = m_runner->start(m_job);
    connect(m_handle, &JobHandle::finished, this, [this](JobStatus status, const QString& error) {
        m_handle = nullptr;
        m_computeButton->setEnabled(true);
        if (status != JobStatus::Succeeded) {
            m_summary->setText(status == JobStatus::Failed ? tr("Failed: %1").arg(error) : tr("Cancelled."));
            if (status == JobStatus::Failed)
                emit failed(error);
            return;
        }
        m_result = m_job->result().fit;
        show(*m_result);
        emit computed();
    });
}

void GpuFitPanel::show(const JointFitResult& fit)
{
    m_table->setRowCount(int(fit.alternatives.size()));
    for (size_t i = 0; i < fit.alternatives.size(); ++i) {
        const KvAlternative& a = fit.alternatives[i];
        const int row = int(i);
        auto set = [&](int c, const QString& text, const QString& tip = {}) {
            setNumberTableCell(m_table, row, c, text, tip);
        };
        set(0, QString::fromLatin1(kvCacheTypeName(a.kvType)) + (fit.chosen == i ? tr(" (chosen)") : QString()));
        if (!a.fits) {
            set(1, tr("✗"), tr("Longest context with the smallest plan: %1 tokens").arg(a.maxContextAnyPlan));
            for (int c = 2; c < 6; ++c)
                set(c, QStringLiteral("—"));
            continue;
        }
        set(1, tr("✓ %1").arg(formatBytes(a.totalBytes)), tr("Weights may take %1").arg(formatBytes(a.weightBudgetBytes)));
        set(2, formatStat(a.solution.error));
        set(3, a.solution.optimal ? tr("0 (optimal)")
                                  : QStringLiteral("%1%").arg(a.solution.error > 0 ? 100.0 * a.solution.gap / a.solution.error : 0.0, 0, 'g', 3),
            tr("Certified: no plan within the budget has an error below %1").arg(formatStat(a.solution.lowerBound)));
        set(4, formatBytes(a.weightsBytes));
        set(5, formatExact(a.maxContext));
    }
    QString text = QString::fromStdString(fit.reason);
    if (!fit.suggestions.empty()) {
        text = tr("<b>Nothing fits:</b> %1. Smallest changes:").arg(text.toHtmlEscaped());
        for (const FitChange& s : fit.suggestions)
            text += QStringLiteral("<br>• ") + QString::fromStdString(s.text).toHtmlEscaped();
    }
    m_summary->setText(text);
    if (fit.chosen)
        m_table->selectRow(int(*fit.chosen));
}

std::optional<size_t> GpuFitPanel::selected() const
{
    if (!m_result)
        return std::nullopt;
    const auto rows = m_table->selectionModel()->selectedRows();
    const size_t row = rows.isEmpty() ? m_result->chosen.value_or(SIZE_MAX) : size_t(rows.front().row());
    if (row >= m_result->alternatives.size() || !m_result->alternatives[row].fits)
        return std::nullopt;
    return row;
}

} // namespace qs
