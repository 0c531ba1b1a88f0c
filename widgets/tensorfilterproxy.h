#pragma once
// Sorting and filtering for the tensor tree: the filter box text is a case-insensitive regular
// expression over "name role" (a plain word works as a substring; an invalid pattern is taken
// literally), groups stay visible while any tensor in them matches, and a matching group shows all of
// its tensors.

#include <QSortFilterProxyModel>

namespace qs {

class TensorFilterProxy final : public QSortFilterProxyModel {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(TensorFilterProxy)

public:
    explicit TensorFilterProxy(QObject* parent = nullptr);
    // Returns false when the text was not a valid regular expression (then it is matched literally).
    bool setFilterPattern(const QString& text);
};

} // namespace qs
