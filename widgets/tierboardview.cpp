#include "widgets/tierboardview.h"

#include "core/quant/format.h"
#include "widgets/formatting.h"
#include "widgets/plandocument.h"
#include "widgets/ruleseditor.h"
#include "widgets/tierboardmodel.h"

#include <QAction>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeyEvent>
#include <QItemSelectionModel>
#include <QLabel>
#include <QMenu>
#include <QScrollArea>
#include <QPushButton>
#include <QTreeView>
#include <QVBoxLayout>

namespace qs {

namespace {

QString groupKey(const QModelIndex& index)
{
    const QString format = index.data(TierBoardModel::FormatRole).toString();
    QString title = index.data().toString();
    title = title.left(title.lastIndexOf(QLatin1String(" (")));
    return format + QLatin1Char('|') + title;
}

} // namespace

TierBoardView::TierBoardView(PlanDocument* document, QWidget* parent)
    : QWidget(parent), m_document(document), m_model(new TierBoardModel(document, this))
{
    auto* outer = new QVBoxLayout(this);
    outer->setContentsMargins(0, 0, 0, 0);
    outer->setSpacing(2);
    // Tiers are the user's: add any format as a column; right-click a column's header to move or remove it.
    auto* bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 0);
    auto* add = new QPushButton(tr("Add Tier"));
    add->setObjectName(QStringLiteral("addTier"));
    m_addMenu = new QMenu(add);
    connect(m_addMenu, &QMenu::aboutToShow, this, [this] { fillAddTierMenu(m_addMenu); });
    add->setMenu(m_addMenu);
    bar->addWidget(add);
    auto* rules = new QPushButton(tr("Rules…"));
    rules->setObjectName(QStringLiteral("editRules"));
    rules->setToolTip(tr("Assign formats by role or name pattern (first match wins), with a live preview"));
    connect(rules, &QPushButton::clicked, this, &TierBoardView::showRulesDialog);
    bar->addWidget(rules);
    auto* hint = new QLabel(tr("Right-click a tier's title to move or remove it"));
    hint->setStyleSheet(QStringLiteral("color: #666;"));
    bar->addWidget(hint);
    bar->addStretch(1);
    outer->addLayout(bar);
    auto* scroll = new QScrollArea;
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    auto* inner = new QWidget;
    m_columns = new QHBoxLayout(inner);
    m_columns->setContentsMargins(4, 4, 4, 4);
    m_columns->setSpacing(6);
    scroll->setWidget(inner);
    outer->addWidget(scroll);

    connect(m_model, &QAbstractItemModel::modelAboutToBeReset, this, &TierBoardView::saveExpansion);
    connect(m_model, &TierBoardModel::rebuilt, this, &TierBoardView::rebuildColumns);
    rebuildColumns();
}

QTreeView* TierBoardView::tierView(int tier) const
{
    return tier >= 0 && tier < int(m_views.size()) ? m_views[size_t(tier)] : nullptr;
}

void TierBoardView::saveExpansion()
{
    for (QTreeView* view : m_views) {
        const QModelIndex root = view->rootIndex();
        for (int r = 0; r < m_model->rowCount(root); ++r) {
            const QModelIndex g = m_model->index(r, 0, root);
            if (view->isExpanded(g))
                m_expanded.insert(groupKey(g));
            else
                m_expanded.remove(groupKey(g));
        }
    }
}

void TierBoardView::rebuildColumns()
{
    // A drop on a column resets the model while that column's view is still inside its dropEvent: views
    // are therefore reused when the tiers stay the same, and otherwise deleted later, never right away.
    if (int(m_views.size()) != m_model->tierCount()) {
        for (QWidget* panel : m_panels) {
            panel->hide();
            panel->deleteLater();
        }
        m_panels.clear();
        m_views.clear();
        m_headers.clear();
        while (QLayoutItem* item = m_columns->takeAt(0))
            delete item;
        for (int t = 0; t < m_model->tierCount(); ++t)
            createColumn();
    }
    for (int t = 0; t < m_model->tierCount(); ++t)
        configureColumn(t);
}

void TierBoardView::createColumn()
{
    auto* panel = new QFrame;
    panel->setFrameShape(QFrame::StyledPanel);
    auto* layout = new QVBoxLayout(panel);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->setSpacing(2);
    auto* header = new QLabel;
    header->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(header, &QWidget::customContextMenuRequested, this, [this, header](const QPoint& pos) {
        QMenu menu(this);
        fillTierMenu(&menu, header->property("tier").toInt());
        if (!menu.isEmpty())
            menu.exec(header->mapToGlobal(pos));
    });
    layout->addWidget(header);

    auto* view = new QTreeView;
    view->setModel(m_model);
    view->setHeaderHidden(true);
    view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    view->setDefaultDropAction(Qt::MoveAction);
    view->setDropIndicatorShown(true);
    view->setUniformRowHeights(true);
    view->setTextElideMode(Qt::ElideLeft); // the end of a name (attn_q.weight) says the most
    view->setIndentation(12);
    view->header()->setStretchLastSection(false);
    view->header()->setSectionResizeMode(TierBoardModel::NameColumn, QHeaderView::Stretch);
    view->header()->setSectionResizeMode(TierBoardModel::SizeColumn, QHeaderView::ResizeToContents);
    view->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(view, &QWidget::customContextMenuRequested, this,
            [this, view](const QPoint& pos) { showContextMenu(view, pos); });
    connect(view, &QTreeView::activated, this, [this](const QModelIndex& idx) {
        if (idx.data(TierBoardModel::NodeKindRole).toInt() == int(TierBoardModel::NodeKind::Tensor))
            emit tensorActivated(idx.data(TierBoardModel::TensorNamesRole).toStringList().value(0));
    });
    connect(view->selectionModel(), &QItemSelectionModel::selectionChanged, this, [this, view] {
        if (m_selecting)
            return;
        const QModelIndexList rows = view->selectionModel()->selectedRows();
        if (rows.size() == 1 &&
            rows.front().data(TierBoardModel::NodeKindRole).toInt() == int(TierBoardModel::NodeKind::Tensor)) {
            // One selection on the whole board: clear the other columns.
            m_selecting = true;
            for (QTreeView* other : m_views)
                if (other != view)
                    other->clearSelection();
            m_selecting = false;
            emit tensorSelected(rows.front().data(TierBoardModel::TensorNamesRole).toStringList().value(0));
        }
    });
    auto* less = new QAction(tr("Less Precise Tier"), view);
    less->setShortcut(QKeySequence(tr("Ctrl+Right")));
    less->setShortcutContext(Qt::WidgetShortcut);
    connect(less, &QAction::triggered, this,
            [this, view] { moveSelection(view, view->property("tier").toInt() + 1); });
    view->addAction(less);
    auto* more = new QAction(tr("More Precise Tier"), view);
    more->setShortcut(QKeySequence(tr("Ctrl+Left")));
    more->setShortcutContext(Qt::WidgetShortcut);
    connect(more, &QAction::triggered, this,
            [this, view] { moveSelection(view, view->property("tier").toInt() - 1); });
    view->addAction(more);
    view->installEventFilter(this); // Ctrl+Left/Right reach the view as keys (it claims arrow keys)
    layout->addWidget(view, 1);
    m_columns->addWidget(panel, 1);
    m_panels.push_back(panel);
    m_views.push_back(view);
    m_headers.push_back(header);
}

void TierBoardView::configureColumn(int t)
{
    QTreeView* view = m_views[size_t(t)];
    QLabel* header = m_headers[size_t(t)];
    const QModelIndex root = m_model->tierIndex(t);
    const bool empty = m_model->rowCount(root) == 0;
    m_panels[size_t(t)]->setMinimumWidth(empty ? 110 : 210);
    m_columns->setStretch(t, empty ? 0 : 2);

    const QString format = m_model->tierFormat(t);
    const auto names = root.data(TierBoardModel::TensorNamesRole).toStringList();
    const auto bytes = root.data(TierBoardModel::BytesRole).toULongLong();
    QString bits;
    if (!format.isEmpty()) {
        if (auto f = findFormat(format.toStdString())) {
            // At a typical 4096 x 4096 matrix: per-tensor and per-column parts (zero points, scales
            // packed across columns) spread over many rows, as they do in a real model.
            if (auto b = formatBitsPerWeight(*f, 4096, 4096))
                bits = tr("%1 bpw").arg(*b, 0, 'f', 2);
        }
    }
    if (!format.isEmpty()) {
        const QuantMethod method = m_document->plan().tierMethod(format.toStdString());
        if (method != QuantMethod::Rtn)
            bits = tr("%1 · %2").arg(bits, QString::fromLatin1(quantMethodLabel(method)));
    }
    // Three short lines so a narrow (empty) column shows its whole header: name, bits (and the method when
    // it is not round-to-nearest), contents.
    header->setText(tr("<b>%1</b><br><span style='color:#555'>%2<br>%3</span>")
                        .arg(m_model->tierTitle(t).toHtmlEscaped(), bits.isEmpty() ? tr("stored type") : bits)
                        .arg(names.isEmpty() ? tr("empty")
                                             : tr("%1 · %2").arg(countNoun(uint64_t(names.size()), "tensor", "tensors"),
                                                                 formatBytes(bytes))));
    header->setToolTip(format.isEmpty() && m_model->tierAcceptsDrops(t)
                           ? tr("Tensors kept in their stored type; drop here to remove an assignment")
                           : tr("Drop tensors or groups here to store them as %1").arg(m_model->tierTitle(t)));

    view->setObjectName(QStringLiteral("tier:") + m_model->tierTitle(t));
    header->setObjectName(QStringLiteral("tierHeader:") + m_model->tierTitle(t));
    view->setProperty("tier", t);
    header->setProperty("tier", t);
    view->setRootIndex(root);
    view->setDragDropMode(m_model->tierAcceptsDrops(t) ? QAbstractItemView::DragDrop : QAbstractItemView::DragOnly);
    for (int r = 0; r < m_model->rowCount(root); ++r) {
        const QModelIndex g = m_model->index(r, 0, root);
        if (m_expanded.contains(groupKey(g)))
            view->expand(g);
    }
}

void TierBoardView::selectTensor(const QString& name)
{
    const QModelIndex idx = m_model->indexForTensor(name);
    m_selecting = true;
    for (QTreeView* view : m_views)
        view->clearSelection();
    if (QTreeView* view = tierView(m_model->tierOf(idx))) {
        view->expand(idx.parent());
        view->selectionModel()->select(idx, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
        view->scrollTo(idx);
    }
    m_selecting = false;
}

bool TierBoardView::eventFilter(QObject* watched, QEvent* event)
{
    if (event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        auto* view = qobject_cast<QTreeView*>(watched);
        if (view && key->modifiers() == Qt::ControlModifier &&
            (key->key() == Qt::Key_Left || key->key() == Qt::Key_Right)) {
            const int tier = view->property("tier").toInt();
            moveSelection(view, key->key() == Qt::Key_Left ? tier - 1 : tier + 1);
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}

QStringList TierBoardView::selectedNames(QTreeView* view) const
{
    QStringList names;
    for (const QModelIndex& idx : view->selectionModel()->selectedRows())
        for (const QString& n : idx.data(TierBoardModel::TensorNamesRole).toStringList())
            if (!names.contains(n))
                names << n;
    return names;
}

bool TierBoardView::moveSelection(QTreeView* view, int tier)
{
    if (!m_model->tierAcceptsDrops(tier))
        return false;
    const QStringList names = selectedNames(view);
    return !names.isEmpty() && m_document->assign(names, m_model->tierFormat(tier));
}

RulesDialog* TierBoardView::showRulesDialog()
{
    if (!m_rulesDialog) {
        m_rulesDialog = new RulesDialog(m_document, this);
        m_rulesDialog->setWindowFlag(Qt::Window);
    }
    m_rulesDialog->show();
    m_rulesDialog->raise();
    return m_rulesDialog;
}

void TierBoardView::fillAddTierMenu(QMenu* menu)
{
    menu->clear();
    const Plan& plan = m_document->plan();
    static constexpr std::pair<FormatKind, const char*> kKinds[] = {
        {FormatKind::Ggml, "llama.cpp (ggml)"}, {FormatKind::Integer, "Integer (GPTQ, AWQ, compressed-tensors)"},
        {FormatKind::Fp8, "FP8"},               {FormatKind::Float, "Floating point"},
        {FormatKind::Nf4, "NF4"},               {FormatKind::Mx, "Microscaling"}};
    for (const auto& [kind, title] : kKinds) {
        QMenu* sub = nullptr;
        for (const std::string& name : allFormatNames()) {
            const auto f = findFormat(name);
            if (!f || f->traits().kind != kind || plan.tierIndex(name) >= 0)
                continue;
            if (!sub)
                sub = menu->addMenu(tr(title));
            const auto bits = formatBitsPerWeight(*f, 4096, 4096);
            const QString format = QString::fromStdString(name);
            QAction* a = sub->addAction(bits ? tr("%1  (%2 bpw)").arg(format).arg(*bits, 0, 'f', 2) : format, this,
                                        [this, format] { m_document->addTier(format); });
            a->setObjectName(QStringLiteral("addTier:") + format);
        }
    }
    menu->setEnabled(m_document->hasModel());
}

void TierBoardView::fillTierMenu(QMenu* menu, int tier)
{
    const QString format = m_model->tierFormat(tier);
    const int index = m_document->plan().tierIndex(format.toStdString());
    if (format.isEmpty() || index < 0)
        return; // "Unchanged" and "Other formats" are not tiers
    const int last = int(m_document->plan().tiers().size()) - 1;
    QAction* left = menu->addAction(tr("Move Left (more precise side)"), this,
                                    [this, format] { m_document->moveTier(format, -1); });
    left->setEnabled(index > 0);
    QAction* right = menu->addAction(tr("Move Right (less precise side)"), this,
                                     [this, format] { m_document->moveTier(format, +1); });
    right->setEnabled(index < last);
    const auto members = m_model->tierIndex(tier).data(TierBoardModel::TensorNamesRole).toStringList().size();
    menu->addAction(members == 0 ? tr("Remove Tier %1").arg(format)
                                 : tr("Remove Tier %1 and return %2 to the stored type")
                                       .arg(format, countNoun(uint64_t(members), "tensor", "tensors")),
                    this, [this, format] { m_document->removeTier(format); });
    QMenu* methods = menu->addMenu(tr("Quantization Method"));
    methods->setObjectName(QStringLiteral("tierMethod"));
    methods->setToolTipsVisible(true);
    const QuantMethod current = m_document->plan().tierMethod(format.toStdString());
    static constexpr std::pair<QuantMethod, const char*> kMethods[] = {
        {QuantMethod::Rtn, "Round to nearest (RTN)"},
        {QuantMethod::Gptq, "GPTQ (error compensation, needs calibration text)"},
        {QuantMethod::Awq, "AWQ (activation-aware scaling, needs calibration text)"}};
    for (const auto& [method, title] : kMethods) {
        QAction* a = methods->addAction(tr(title), this, [this, format, m = method] { m_document->setTierMethod(format, m); });
        a->setObjectName(QStringLiteral("tierMethod:") + QString::fromLatin1(quantMethodName(method)));
        a->setCheckable(true);
        a->setChecked(method == current);
        const std::string why = quantMethodProblem(method, format.toStdString());
        a->setEnabled(why.empty());
        if (!why.empty())
            a->setToolTip(QString::fromStdString(why));
    }
    menu->addSeparator();
    QMenu* add = menu->addMenu(tr("Add Tier"));
    fillAddTierMenu(add);
}

void TierBoardView::showContextMenu(QTreeView* view, const QPoint& pos)
{
    const QModelIndex under = view->indexAt(pos);
    if (under.isValid() && !view->selectionModel()->isSelected(under))
        view->selectionModel()->select(under, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    const QStringList names = selectedNames(view);
    if (names.isEmpty())
        return;
    QMenu menu(this);
    QMenu* moveTo = menu.addMenu(tr("Move %1 to").arg(names.size() == 1 ? names.front() : tr("%1 tensors").arg(names.size())));
    const int current = m_model->tierOf(under.isValid() ? under : view->rootIndex());
    for (int t = 0; t < m_model->tierCount(); ++t) {
        if (!m_model->tierAcceptsDrops(t))
            continue;
        QAction* a = moveTo->addAction(m_model->tierTitle(t), this, [this, view, t] { moveSelection(view, t); });
        a->setEnabled(t != current);
    }
    menu.addSeparator();
    for (QAction* a : view->actions())
        menu.addAction(a);
    menu.exec(view->viewport()->mapToGlobal(pos));
}

} // namespace qs
