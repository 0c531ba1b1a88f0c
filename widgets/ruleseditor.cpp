#include "widgets/ruleseditor.h"

#include "core/model/tensorrole.h"
#include "core/quant/format.h"
#include "widgets/plandocument.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QListView>
#include <QPushButton>
#include <QSplitter>
#include <QStringListModel>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QVBoxLayout>

namespace qs {

namespace {

constexpr int kChoicesRole = Qt::UserRole + 1; // the values a cell can take (a combo box edits it)

QStringList roleIds()
{
    QStringList ids;
    for (int r = 0; r < int(TensorRole::Count); ++r)
        if (roleIsQuantizable(TensorRole(r)))
            ids << QString::fromLatin1(roleName(TensorRole(r)));
    return ids;
}

QStringList formatNames()
{
    QStringList names;
    for (const auto& n : allFormatNames())
        names << QString::fromStdString(n);
    return names;
}

// Cells with a list of choices are edited with a combo box, the others with the default line edit.
class ChoiceDelegate final : public QStyledItemDelegate {
public:
    using QStyledItemDelegate::QStyledItemDelegate;

    QWidget* createEditor(QWidget* parent, const QStyleOptionViewItem& option, const QModelIndex& index) const override
    {
        const QStringList choices = index.data(kChoicesRole).toStringList();
        if (choices.isEmpty())
            return QStyledItemDelegate::createEditor(parent, option, index);
        auto* combo = new QComboBox(parent);
        combo->addItems(choices);
        combo->setMaxVisibleItems(20);
        return combo;
    }
    void setEditorData(QWidget* editor, const QModelIndex& index) const override
    {
        if (auto* combo = qobject_cast<QComboBox*>(editor))
            combo->setCurrentText(index.data(Qt::EditRole).toString());
        else
            QStyledItemDelegate::setEditorData(editor, index);
    }
    void setModelData(QWidget* editor, QAbstractItemModel* model, const QModelIndex& index) const override
    {
        if (auto* combo = qobject_cast<QComboBox*>(editor))
            model->setData(index, combo->currentText());
        else
            QStyledItemDelegate::setModelData(editor, model, index);
    }
};

} // namespace

RulesModel::RulesModel(QObject* parent) : QAbstractTableModel(parent) {}

void RulesModel::setRules(std::vector<PlanRule> rules)
{
    beginResetModel();
    m_rules = std::move(rules);
    m_counts.clear();
    endResetModel();
}

void RulesModel::setCounts(std::vector<int> counts)
{
    m_counts = std::move(counts);
    if (!m_rules.empty())
        emit dataChanged(index(0, CountColumn), index(rowCount() - 1, CountColumn));
}

void RulesModel::addRule(const PlanRule& rule, int row)
{
    const int at = row < 0 || row > rowCount() ? rowCount() : row;
    beginInsertRows({}, at, at);
    m_rules.insert(m_rules.begin() + at, rule);
    endInsertRows();
    emit rulesEdited();
}

bool RulesModel::moveRule(int row, int delta)
{
    const int to = row + delta;
    if (row < 0 || row >= rowCount() || to < 0 || to >= rowCount() || delta == 0)
        return false;
    // beginMoveRows wants the destination before which the row lands, in the pre-move numbering.
    if (!beginMoveRows({}, row, row, {}, delta > 0 ? to + 1 : to))
        return false;
    PlanRule r = m_rules[size_t(row)];
    m_rules.erase(m_rules.begin() + row);
    m_rules.insert(m_rules.begin() + to, std::move(r));
    endMoveRows();
    emit rulesEdited();
    return true;
}

int RulesModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(m_rules.size());
}

int RulesModel::columnCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant RulesModel::data(const QModelIndex& index, int role) const
{
    if (!index.isValid() || index.row() >= rowCount())
        return {};
    const PlanRule& r = m_rules[size_t(index.row())];
    const bool isRole = r.match == PlanRule::Match::Role;
    if (role == kChoicesRole) {
        switch (index.column()) {
        case MatchColumn:
            return QStringList{tr("Role"), tr("Regex")};
        case PatternColumn:
            return isRole ? roleIds() : QStringList{};
        case FormatColumn:
            return formatNames();
        default:
            return {};
        }
    }
    if (role == Qt::ToolTipRole && index.column() == PatternColumn)
        return isRole ? tr("A tensor role: every tensor of that kind in every block")
                      : tr("A regular expression searched in the tensor name (RE2 syntax; anchor with ^...$), "
                           "e.g. blk\\.(0|1)\\.attn_v");
    if (role != Qt::DisplayRole && role != Qt::EditRole)
        return {};
    switch (index.column()) {
    case MatchColumn:
        return isRole ? tr("Role") : tr("Regex");
    case PatternColumn:
        return QString::fromStdString(r.pattern);
    case FormatColumn:
        return QString::fromStdString(r.format);
    case CountColumn:
        return size_t(index.row()) < m_counts.size() ? QVariant(m_counts[size_t(index.row())]) : QVariant();
    default:
        return {};
    }
}

QVariant RulesModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation == Qt::Vertical && role == Qt::DisplayRole)
        return section + 1;
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    static const char* const titles[] = {"Match", "Pattern", "Format", "Matches"};
    return section >= 0 && section < ColumnCount ? tr(titles[section]) : QVariant();
}

Qt::ItemFlags RulesModel::flags(const QModelIndex& index) const
{
    if (!index.isValid())
        return Qt::NoItemFlags;
    const Qt::ItemFlags base = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
    return index.column() == CountColumn ? base : base | Qt::ItemIsEditable;
}

bool RulesModel::setData(const QModelIndex& index, const QVariant& value, int role)
{
    if (!index.isValid() || role != Qt::EditRole || index.row() >= rowCount())
        return false;
    PlanRule& r = m_rules[size_t(index.row())];
    const std::string v = value.toString().trimmed().toStdString();
    switch (index.column()) {
    case MatchColumn: {
        const auto match = value.toString() == tr("Role") ? PlanRule::Match::Role : PlanRule::Match::Regex;
        if (match == r.match)
            return false;
        r.match = match;
        // A role name is a fine regex; a regex is rarely a role: start from a role there.
        if (match == PlanRule::Match::Role && !roleIds().contains(QString::fromStdString(r.pattern)))
            r.pattern = roleIds().value(0).toStdString();
        emit dataChanged(this->index(index.row(), MatchColumn), this->index(index.row(), PatternColumn));
        break;
    }
    case PatternColumn:
        if (v == r.pattern)
            return false;
        r.pattern = v;
        emit dataChanged(index, index);
        break;
    case FormatColumn: {
        const auto f = findFormat(v);
        if (!f || f->name() == r.format)
            return false;
        r.format = f->name();
        emit dataChanged(index, index);
        break;
    }
    default:
        return false;
    }
    emit rulesEdited();
    return true;
}

bool RulesModel::removeRows(int row, int count, const QModelIndex& parent)
{
    if (parent.isValid() || row < 0 || count <= 0 || row + count > rowCount())
        return false;
    beginRemoveRows({}, row, row + count - 1);
    m_rules.erase(m_rules.begin() + row, m_rules.begin() + row + count);
    endRemoveRows();
    emit rulesEdited();
    return true;
}

RulesDialog::RulesDialog(PlanDocument* document, QWidget* parent)
    : QDialog(parent), m_document(document), m_model(new RulesModel(this))
{
    setWindowTitle(tr("Plan Rules"));
    setObjectName(QStringLiteral("rulesDialog"));
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("Each tensor gets the format of the <b>first</b> rule that matches it, by role or by "
                                "a regular expression on its name. The preview shows what a rule matches on "
                                "this model."));
    intro->setWordWrap(true);
    layout->addWidget(intro);

    auto* split = new QSplitter(Qt::Horizontal);
    auto* left = new QWidget;
    auto* leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    m_table = new QTableView;
    m_table->setObjectName(QStringLiteral("rulesTable"));
    m_table->setModel(m_model);
    m_table->setItemDelegate(new ChoiceDelegate(m_table));
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->setEditTriggers(QAbstractItemView::AllEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(RulesModel::PatternColumn, QHeaderView::Stretch);
    m_table->horizontalHeader()->setSectionResizeMode(RulesModel::MatchColumn, QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setSectionResizeMode(RulesModel::FormatColumn, QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setSectionResizeMode(RulesModel::CountColumn, QHeaderView::ResizeToContents);
    leftLayout->addWidget(m_table, 1);
    auto* buttons = new QHBoxLayout;
    auto button = [&](const QString& text, auto slot) {
        auto* b = new QPushButton(text);
        b->setAutoDefault(false);
        connect(b, &QPushButton::clicked, this, slot);
        buttons->addWidget(b);
        return b;
    };
    const auto current = [this] {
        const QModelIndexList rows = m_table->selectionModel()->selectedRows();
        return rows.isEmpty() ? -1 : rows.front().row();
    };
    button(tr("Add Role Rule"), [this, current] {
        m_model->addRule({PlanRule::Match::Role, "attn_v", "Q6_K"}, current() < 0 ? -1 : current() + 1);
    });
    button(tr("Add Regex Rule"), [this, current] {
        m_model->addRule({PlanRule::Match::Regex, "^blk\\.0\\.", "Q8_0"}, current() < 0 ? -1 : current() + 1);
    });
    button(tr("Remove"), [this, current] {
        if (current() >= 0)
            m_model->removeRows(current(), 1);
    });
    button(tr("Up"), [this, current] {
        const int r = current();
        if (m_model->moveRule(r, -1))
            m_table->selectRow(r - 1);
    });
    button(tr("Down"), [this, current] {
        const int r = current();
        if (m_model->moveRule(r, +1))
            m_table->selectRow(r + 1);
    });
    leftLayout->addLayout(buttons);
    auto* unmatchedRow = new QHBoxLayout;
    unmatchedRow->addWidget(new QLabel(tr("Tensors no rule matches:")));
    m_unmatched = new QComboBox;
    m_unmatched->setObjectName(QStringLiteral("rulesUnmatched"));
    m_unmatched->addItem(tr("keep their current format"), QString());
    m_unmatched->addItem(tr("return to the stored type"), QStringLiteral("stored"));
    for (const QString& f : formatNames())
        m_unmatched->addItem(tr("get %1").arg(f), f);
    unmatchedRow->addWidget(m_unmatched, 1);
    leftLayout->addLayout(unmatchedRow);
    split->addWidget(left);

    auto* right = new QWidget;
    auto* rightLayout = new QVBoxLayout(right);
    rightLayout->setContentsMargins(0, 0, 0, 0);
    rightLayout->addWidget(new QLabel(tr("Matched by the selected rule:")));
    auto* list = new QListView;
    list->setObjectName(QStringLiteral("rulesPreview"));
    m_previewModel = new QStringListModel(this);
    list->setModel(m_previewModel);
    list->setEditTriggers(QAbstractItemView::NoEditTriggers);
    rightLayout->addWidget(list, 1);
    split->addWidget(right);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    layout->addWidget(split, 1);

    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("rulesStatus"));
    m_status->setWordWrap(true);
    layout->addWidget(m_status);
    auto* box = new QDialogButtonBox(QDialogButtonBox::Apply | QDialogButtonBox::Close);
    connect(box->button(QDialogButtonBox::Apply), &QPushButton::clicked, this, &RulesDialog::apply);
    connect(box, &QDialogButtonBox::rejected, this, &QDialog::close);
    layout->addWidget(box);

    connect(m_model, &RulesModel::rulesEdited, this, &RulesDialog::refresh);
    connect(m_unmatched, &QComboBox::currentIndexChanged, this, &RulesDialog::refresh);
    connect(m_table->selectionModel(), &QItemSelectionModel::selectionChanged, this, &RulesDialog::refresh);
    connect(m_document, &PlanDocument::layoutChanged, this, &RulesDialog::refresh);
    m_model->setRules(m_document->plan().rules());
    resize(820, 480);
    refresh();
}

void RulesDialog::setUnmatched(const QString& choice)
{
    const int i = m_unmatched->findData(choice);
    if (i >= 0)
        m_unmatched->setCurrentIndex(i);
}

QStringList RulesDialog::preview(int rule) const
{
    QStringList out;
    const auto& tensors = m_document->layout().tensors;
    if (rule < 0 || rule >= m_model->rowCount() || m_matches.size() != tensors.size())
        return out;
    const QString format = QString::fromStdString(m_model->rules()[size_t(rule)].format);
    for (size_t i = 0; i < tensors.size(); ++i)
        if (m_matches[i] == rule)
            out << QStringLiteral("%1 → %2").arg(QString::fromStdString(tensors[i].name), format);
    return out;
}

QString RulesDialog::status() const
{
    return m_status->text();
}

void RulesDialog::refresh()
{
    m_matches.clear();
    const auto& rules = m_model->rules();
    try {
        m_matches = ruleMatches(m_document->layout(), rules);
    } catch (const std::exception& e) {
        m_status->setText(tr("<span style=\"color:#b00020\">%1</span>").arg(QString::fromStdString(e.what()).toHtmlEscaped()));
        m_model->setCounts({});
        m_previewModel->setStringList({});
        return;
    }
    std::vector<int> counts(rules.size(), 0);
    int unmatched = 0;
    for (int m : m_matches) {
        if (m >= 0)
            ++counts[size_t(m)];
        else if (m == kNoRule)
            ++unmatched;
    }
    const int total = int(std::count_if(m_matches.begin(), m_matches.end(), [](int m) { return m != kNotPlannable; }));
    m_model->setCounts(counts);
    QString text = tr("%1 of %2 plannable tensors matched by a rule; %3 by none.")
                       .arg(total - unmatched)
                       .arg(total)
                       .arg(unmatched);
    for (size_t k = 0; k < counts.size(); ++k)
        if (counts[k] == 0)
            text += tr(" Rule %1 matches nothing%2.")
                        .arg(k + 1)
                        .arg(std::any_of(rules.begin(), rules.begin() + std::ptrdiff_t(k),
                                         [&](const PlanRule& r) { return r == rules[k]; })
                                 ? tr(" (a rule above is the same)")
                                 : QString());
    m_status->setText(text);
    const QModelIndexList rows = m_table->selectionModel()->selectedRows();
    m_previewModel->setStringList(preview(rows.isEmpty() ? -1 : rows.front().row()));
}

bool RulesDialog::apply()
{
    const auto& rules = m_model->rules();
    const QString unmatched = m_unmatched->currentData().toString();
    Plan after = m_document->plan();
    try {
        const std::vector<int> matches = ruleMatches(m_document->layout(), rules);
        // Formats the plan's target stores differently (llama.cpp's fallback for a block that does not divide
        // the row) are substituted, and said; formats it cannot express at all are refused.
        std::vector<std::string> notes;
        applyRules(after, m_document->layout(), rules,
                   unmatched == QLatin1String("stored") ? std::string() : unmatched.toStdString(), after.target(),
                   &notes);
        m_notes = notes;
        if (unmatched == QLatin1String("stored"))
            for (size_t i = 0; i < matches.size(); ++i)
                if (matches[i] == kNoRule)
                    after.unassign(m_document->layout().tensors[i].name);
    } catch (const std::exception& e) {
        m_status->setText(tr("<span style=\"color:#b00020\">Not applied: %1</span>")
                              .arg(QString::fromStdString(e.what()).toHtmlEscaped()));
        return false;
    }
    after.setRules(rules);
    // New formats become tiers (columns) like any other assignment.
    PlanDocument::ensureTiersForAssignments(after);
    const bool changed = m_document->setPlan(after, tr("Apply %n rule(s)", nullptr, int(rules.size())));
    QString done = changed ? tr("Applied.") + QLatin1Char(' ') + m_status->text() : tr("Nothing changed.");
    if (!m_notes.empty())
        done += tr(" %1 stored in another format for %2 (hover).")
                    .arg(m_notes.size())
                    .arg(QString::fromLatin1(exportTargetName(after.target())));
    QStringList tip;
    for (const auto& n : m_notes)
        tip << QString::fromStdString(n);
    m_status->setToolTip(tip.join(QLatin1Char('\n')));
    m_status->setText(done);
    return true;
}

} // namespace qs
