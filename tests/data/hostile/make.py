"""Writes the hostile-input corpus the tests in tests/it/hostile.rs read. Run once; the files are
committed. Each file is something an administrator could plausibly be handed. Run it from this
folder. damaged-ole.xls is not made here: it is the input on which the read_file fuzz target
found calamine's OLE reader panicking, kept as found."""
import random, shutil, openpyxl
from openpyxl.cell.cell import ERROR_CODES

H = "user_email,user_first_name,user_department\n"
def w(name, data, mode="w", **kw):
    with open(name, mode, **kw) as f:
        f.write(data)

w("empty.csv", "")
w("header-only.csv", H)
random.seed(5)
w("garbage.csv", bytes(random.randrange(256) for _ in range(4096)), "wb")
w("csv-named.xlsx", H + "user00001@example.com,Ann,Sales\n")
# UTF-8 rows, then one row saved by another program in Latin-1.
w("mixed-encodings.csv", (H + "user00001@example.com,Zoë,Sales\n").encode() + "user00002@example.com,Jos\xe9,HR\n".encode("latin-1"), "wb")
# A NUL inside a cell, past the first 64 KB that decide whether a file is text.
filler = "".join(f"user{i:05}@example.com,Name{i},Dept\n" for i in range(1, 3001))
w("nul-late.csv", (H + filler + "user03001@example.com,Bad\x00Name,Dept\n").encode(), "wb")
w("nul-early.csv", (H + "user00001@example.com,Bad\x00Name,Dept\n").encode(), "wb")
w("huge-cell.csv", H + "user00001@example.com," + "x" * 1_048_576 + ",Sales\n")
w("wide.csv", "user_email," + ",".join(f"extra{i}" for i in range(9999)) + "\n" + "user00001@example.com," + ",".join("v" for _ in range(9999)) + "\n")
w("duplicate-headers.csv", "user_email,Department,user_department\nuser00001@example.com,A,B\n")
w("ragged.csv", H + "user00001@example.com,Ann\nuser00002@example.com,Ben,HR,surprise\nuser00003@example.com,Cy,Ops\n")
w("title-row.csv", "Users to update in Q3,,\n" + H + "user00001@example.com,Ann,Sales\n")

wb = openpyxl.Workbook(); ws = wb.active
ws.append(["user_email", "user_first_name", "user_department"])
ws.append(["user00001@example.com", "Ann", "Sales"])
ws.append(["user00002@example.com", "Ben", "#REF!"]); ws["C3"].data_type = "e"
ws.append(["user00003@example.com", "Cy", "#DIV/0!"]); ws["C4"].data_type = "e"
wb.save("formula-errors.xlsx")

wb = openpyxl.Workbook(); ws = wb.active
ws.append(["user_email", "user_first_name", "user_department"])
ws.append(["user00001@example.com", "Ann", "Sales"])
ws.append(["user00002@example.com", "Ben", None])
ws.append([None, "Cy", None])
ws.merge_cells("C2:C4")  # one department typed across three rows
ws.merge_cells("A3:A4")  # and one e-mail over two
wb.save("merged-cells.xlsx")

good = open("../../../samples/hub-clean.xlsx", "rb").read()
w("truncated.xlsx", good[: len(good) // 2], "wb")
w("xlsx-named.csv", good, "wb")
print("ok")
