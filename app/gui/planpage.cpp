#include "app/gui/planpage.h"

#include "app/gui/plansession.h"
#include "core/plan/export.h"
#include "core/plan/plan.h"
#include "widgets/footprintpanel.h"
#include "widgets/issuesbutton.h"
#include "widgets/plandocument.h"
#include "widgets/tierboardview.h"

#include <QAction>
#include <QComboBox>
#include <QSignalBlocker>
#include <QLabel>
#include <QMenu>
#include <QScrollArea>
#include <QSplitter>
#include <QToolBar>
#include <QTimer>
#include <QToolButton>
#include <QUndoStack>
#include <QVBoxLayout>

namespace qs {

namespace {
QIcon themedIcon(const char* themeName, const char* resource)
{
    return QIcon::fromTheme(QLatin1String(themeName), QIcon(QLatin1String(resource)));
}
} // namespace

PlanPage::PlanPage(PlanSession* session, ErrorPresenter presentError, QWidget* parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("view:plan"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(createToolBar(session, std::move(presentError)));

    auto* splitter = new QSplitter(Qt::Horizontal);
    m_tierBoard = new TierBoardView(session->document());
    splitter->addWidget(m_tierBoard);
    m_footprint = new FootprintPanel(session->document());
    // Scrolls instead of imposing its height on the window.
    auto* footprintScroll = new QScrollArea;
    footprintScroll->setWidget(m_footprint);
    footprintScroll->setWidgetResizable(true);
    footprintScroll->setFrameShape(QFrame::NoFrame);
    footprintScroll->setMaximumWidth(440);
    footprintScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    splitter->addWidget(footprintScroll);
    // The footprint panel starts at a readable 340 px (GPU names, legend, table); extra width goes to the
    // tier board, which scrolls when it has too little.
    splitter->setStretchFactor(0, 1);
    splitter->setStretchFactor(1, 0);
    splitter->setSizes({900, 340});
    layout->addWidget(splitter, 1);
}

QWidget* PlanPage::createToolBar(PlanSession* session, ErrorPresenter presentError)
{
    PlanDocument* plan = session->document();
    auto* bar = new QToolBar;
    bar->setIconSize(QSize(16, 16));
    bar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    // The tool the plan is for: presets, the issues button and the tier board's checks follow it (a plan for
    // GPTQModel shows what GPTQModel would refuse).
    bar->addWidget(new QLabel(tr("For: ")));
    auto* target = new QComboBox;
    target->setObjectName(QStringLiteral("planTarget"));
    target->setToolTip(tr("The tool the plan is for: presets and the issues button check what it can store"));
    static constexpr std::pair<ExportTarget, const char*> kTargets[] = {
        {ExportTarget::PlanJson, "any tool"},
        {ExportTarget::LlamaCpp, "llama.cpp"},
        {ExportTarget::GptqModel, "GPTQModel"},
        {ExportTarget::LlmCompressor, "llm-compressor"},
        {ExportTarget::CompressedTensors, "compressed-tensors (vLLM)"}};
    for (const auto& [t, label] : kTargets)
        target->addItem(tr(label), int(t));
    bar->addWidget(target);
    auto followTarget = [plan, target] {
        const QSignalBlocker block(target);
        target->setCurrentIndex(std::max(0, target->findData(int(plan->plan().target()))));
    };
    connect(plan, &PlanDocument::layoutChanged, target, followTarget);
    connect(plan, &PlanDocument::planChanged, target, followTarget);
    connect(target, &QComboBox::currentIndexChanged, plan,
            [plan, target] { plan->setTarget(ExportTarget(target->currentData().toInt())); });
    bar->addWidget(new QLabel(tr("  Preset: ")));
    auto* presets = new QComboBox;
    presets->setObjectName(QStringLiteral("planPreset"));
    for (const std::string& name : presetNames())
        presets->addItem(QString::fromStdString(name));
    bar->addWidget(presets);
    // The box shows the preset the current plan came from (a new model starts from its default preset),
    // not the previous model's choice.
    auto follow = [plan, presets] {
        const QString from = QString::fromStdString(plan->plan().preset());
        const int i = presets->findText(from);
        if (i >= 0)
            presets->setCurrentIndex(i);
        presets->setToolTip(from.isEmpty() ? tr("Choose a preset and press Apply Preset")
                                           : tr("The plan started from the %1 preset; choose another and press "
                                                "Apply Preset, or drag tensors between tiers")
                                                 .arg(from));
    };
    connect(plan, &PlanDocument::layoutChanged, presets, follow);
    connect(plan, &PlanDocument::planChanged, presets, follow);
    bar->addAction(tr("Apply Preset"), this, [plan, presets, presentError] {
        try {
            plan->applyPreset(presets->currentText());
        } catch (const std::exception& e) {
            presentError(tr("Preset"), tr("Cannot apply %1").arg(presets->currentText()),
                         QString::fromStdString(e.what()));
        }
    });
    bar->addSeparator();
    bar->addAction(tr("Fit to Budget…"), this, &PlanPage::fitToBudgetRequested)
        ->setToolTip(tr("Choose every tensor's tier to minimise the predicted error within a size budget"));
    bar->addAction(tr("Quantize…"), this, &PlanPage::quantizeRequested)
        ->setToolTip(tr("Write the model quantized with this plan (GGUF, compressed-tensors, GPTQ, fake-quant)"));
    auto* exportButton = new QToolButton;
    exportButton->setText(tr("Export"));
    exportButton->setIcon(themedIcon("document-export", ":/icons/export.svg"));
    exportButton->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    exportButton->setPopupMode(QToolButton::InstantPopup);
    auto* exportMenu = new QMenu(exportButton);
    for (auto target : {ExportTarget::LlamaCpp, ExportTarget::GptqModel, ExportTarget::LlmCompressor,
                        ExportTarget::CompressedTensors, ExportTarget::PlanJson}) {
        static const char* const titles[] = {"llama.cpp tensor types…", "GPTQModel quantize_config…",
                                             "llm-compressor recipe…", "compressed-tensors config…",
                                             "Quantscope plan (JSON)…"};
        exportMenu->addAction(tr(titles[int(target)]), session,
                              [session, target] { session->exportDialog(int(target)); });
    }
    exportButton->setMenu(exportMenu);
    bar->addWidget(exportButton);
    bar->addAction(tr("Open Plan…"), session, &PlanSession::openDialog);
    QAction* save = bar->addAction(themedIcon("document-save", ":/icons/export.svg"), tr("Save Plan…"),
                                   session, &PlanSession::saveDialog);
    save->setShortcut(QKeySequence::Save);
    bar->addSeparator();
    bar->addWidget(new IssuesButton(plan));
    bar->addSeparator();
    m_undo = plan->undoStack()->createUndoAction(this, tr("Undo"));
    m_undo->setIcon(themedIcon("edit-undo", ":/icons/undo.svg"));
    m_undo->setShortcut(QKeySequence::Undo);
    m_redo = plan->undoStack()->createRedoAction(this, tr("Redo"));
    m_redo->setIcon(themedIcon("edit-redo", ":/icons/redo.svg"));
    m_redo->setShortcuts({QKeySequence(tr("Ctrl+Shift+Z")), QKeySequence::Redo});
    bar->addAction(m_undo);
    bar->addAction(m_redo);
    auto* hint =
        new QLabel(tr("   Drag tensors or whole blocks between tiers · right-click or Ctrl+←/→ to move"));
    hint->setStyleSheet(QStringLiteral("color: #666;"));
    bar->addWidget(hint);
    // A drop into a format that cannot store a tensor: say what was stored instead or refused, and why.
    connect(plan, &PlanDocument::assignmentAdjusted, hint, [hint, normal = hint->text()](const QStringList& why) {
        hint->setText(QStringLiteral("   ") + why.front() +
                      (why.size() > 1 ? tr(" (and %1 more)").arg(why.size() - 1) : QString()));
        hint->setToolTip(why.join(QLatin1Char('\n')));
        hint->setStyleSheet(QStringLiteral("color: #b00020;"));
        QTimer::singleShot(10000, hint, [hint, normal] {
            hint->setText(normal);
            hint->setToolTip({});
            hint->setStyleSheet(QStringLiteral("color: #666;"));
        });
    });
    return bar;
}

} // namespace qs
