"""The function catalogue: which names are real spreadsheet functions, and what they do that matters to an audit.

Names are stored upper case without the storage prefixes Excel writes into files (`_xlfn.`, `_xlws.`); use
`canonical_function_name` before looking a name up.
"""

from __future__ import annotations

# Excel 2007's function list (the names every Excel since then understands, stored without a prefix).
_EXCEL_2007 = """
ABS ACCRINT ACCRINTM ACOS ACOSH ADDRESS AMORDEGRC AMORLINC AND AREAS ASC ASIN ASINH ATAN ATAN2 ATANH AVEDEV
AVERAGE AVERAGEA AVERAGEIF AVERAGEIFS BAHTTEXT BESSELI BESSELJ BESSELK BESSELY BETADIST BETAINV BIN2DEC
BIN2HEX BIN2OCT BINOMDIST CALL CEILING CELL CHAR CHIDIST CHIINV CHITEST CHOOSE CLEAN CODE COLUMN COLUMNS COMBIN
COMPLEX CONCATENATE CONFIDENCE CONVERT CORREL COS COSH COUNT COUNTA COUNTBLANK COUNTIF COUNTIFS COUPDAYBS
COUPDAYS COUPDAYSNC COUPNCD COUPNUM COUPPCD COVAR CRITBINOM CUBEKPIMEMBER CUBEMEMBER CUBEMEMBERPROPERTY
CUBERANKEDMEMBER CUBESET CUBESETCOUNT CUBEVALUE CUMIPMT CUMPRINC DATE DATEDIF DATEVALUE DAVERAGE DAY DAYS360
DB DBCS DCOUNT DCOUNTA DDB DEC2BIN DEC2HEX DEC2OCT DEGREES DELTA DEVSQ DGET DISC DMAX DMIN DOLLAR DOLLARDE DOLLARFR
DPRODUCT DSTDEV DSTDEVP DSUM DURATION DVAR DVARP ECMA.CEILING EDATE EFFECT EOMONTH ERF ERFC ERROR.TYPE EUROCONVERT
EVEN EXACT EXP EXPONDIST FACT FACTDOUBLE FALSE FDIST FIND FINDB FINV FISHER FISHERINV FIXED FLOOR FORECAST
FREQUENCY FTEST FV FVSCHEDULE GAMMADIST GAMMAINV GAMMALN GCD GEOMEAN GESTEP GETPIVOTDATA GROWTH HARMEAN
HEX2BIN HEX2DEC HEX2OCT HLOOKUP HOUR HYPERLINK HYPGEOMDIST IF IFERROR IMABS IMAGINARY IMARGUMENT IMCONJUGATE
IMCOS IMDIV IMEXP IMLN IMLOG10 IMLOG2 IMPOWER IMPRODUCT IMREAL IMSIN IMSQRT IMSUB IMSUM INDEX INDIRECT INFO
INT INTERCEPT INTRATE IPMT IRR ISBLANK ISERR ISERROR ISEVEN ISLOGICAL ISNA ISNONTEXT ISNUMBER ISO.CEILING
ISODD ISPMT ISREF ISTEXT JIS KURT LARGE LCM LEFT LEFTB LEN LENB LINEST LN LOG LOG10 LOGEST LOGINV LOGNORMDIST
LOOKUP LOWER MATCH MAX MAXA MDETERM MDURATION MEDIAN MID MIDB MIN MINA MINUTE MINVERSE MIRR MMULT MOD MODE
MONTH MROUND MULTINOMIAL N NA NEGBINOMDIST NETWORKDAYS NETWORKDAYS.INTL NOMINAL NORMDIST NORMINV NORMSDIST
NORMSINV NOT NOW NPER NPV OCT2BIN OCT2DEC OCT2HEX ODD ODDFPRICE ODDFYIELD ODDLPRICE ODDLYIELD OFFSET OR
PEARSON PERCENTILE PERCENTRANK PERMUT PHONETIC PI PMT POISSON POWER PPMT PRICE PRICEDISC PRICEMAT PROB PRODUCT
PROPER PV QUARTILE QUOTIENT RADIANS RAND RANDBETWEEN RANK RATE RECEIVED REGISTER.ID REPLACE REPLACEB REPT RIGHT
RIGHTB ROMAN ROUND ROUNDDOWN ROUNDUP ROW ROWS RSQ RTD SEARCH SEARCHB SECOND SERIESSUM SIGN SIN SINH SKEW SLN
SLOPE SMALL SQRT SQRTPI STANDARDIZE STDEV STDEVA STDEVP STDEVPA STEYX SUBSTITUTE SUBTOTAL SUM SUMIF SUMIFS
SUMPRODUCT SUMSQ SUMX2MY2 SUMX2PY2 SUMXMY2 SYD T TAN TANH TBILLEQ TBILLPRICE TBILLYIELD TDIST TEXT TIME
TIMEVALUE TINV TODAY TRANSPOSE TREND TRIM TRIMMEAN TRUE TRUNC TTEST TYPE UPPER VALUE VAR VARA VARP VARPA VDB
VLOOKUP WEEKDAY WEEKNUM WEIBULL WORKDAY WORKDAY.INTL XIRR XNPV YEAR YEARFRAC YIELD YIELDDISC YIELDMAT ZTEST
"""

# Functions added since Excel 2010 (Excel stores these with an `_xlfn.` prefix), through Microsoft 365.
_EXCEL_NEWER = """
ACOT ACOTH AGGREGATE ANCHORARRAY ARABIC ARRAYTOTEXT BASE BETA.DIST BETA.INV BINOM.DIST BINOM.DIST.RANGE BINOM.INV
BITAND BITLSHIFT BITOR BITRSHIFT BITXOR BYCOL BYROW CEILING.MATH CEILING.PRECISE CHISQ.DIST CHISQ.DIST.RT
CHISQ.INV CHISQ.INV.RT CHISQ.TEST CHOOSECOLS CHOOSEROWS COMBINA CONCAT CONFIDENCE.NORM CONFIDENCE.T COT COTH
COVARIANCE.P COVARIANCE.S CSC CSCH DAYS DECIMAL DETECTLANGUAGE DROP ENCODEURL ERF.PRECISE ERFC.PRECISE EXPAND
EXPON.DIST F.DIST F.DIST.RT F.INV F.INV.RT F.TEST FIELDVALUE FILTER FILTERXML FLOOR.MATH FLOOR.PRECISE
FORECAST.ETS FORECAST.ETS.CONFINT FORECAST.ETS.SEASONALITY FORECAST.ETS.STAT FORECAST.LINEAR FORMULATEXT GAMMA
GAMMA.DIST GAMMA.INV GAMMALN.PRECISE GAUSS GROUPBY HSTACK HYPGEOM.DIST IFNA IFS IMAGE IMCOSH IMCOT IMCSC IMCSCH
IMSEC IMSECH IMSINH IMTAN ISFORMULA ISOMITTED ISOWEEKNUM LAMBDA LET LOGNORM.DIST LOGNORM.INV MAKEARRAY MAP
MAXIFS MINIFS MODE.MULT MODE.SNGL MUNIT NEGBINOM.DIST NORM.DIST NORM.INV NORM.S.DIST NORM.S.INV NUMBERVALUE
PDURATION PERCENTILE.EXC PERCENTILE.INC PERCENTOF PERCENTRANK.EXC PERCENTRANK.INC PERMUTATIONA PHI PIVOTBY
POISSON.DIST PY QUARTILE.EXC QUARTILE.INC RANDARRAY RANK.AVG RANK.EQ REDUCE REGEXEXTRACT REGEXREPLACE REGEXTEST
RRI SCAN SEC SECH SEQUENCE SHEET SHEETS SINGLE SKEW.P SORT SORTBY STDEV.P STDEV.S STOCKHISTORY SWITCH T.DIST
T.DIST.2T T.DIST.RT T.INV T.INV.2T T.TEST TAKE TEXTAFTER TEXTBEFORE TEXTJOIN TEXTSPLIT TOCOL TOROW TRANSLATE
TRIMRANGE UNICHAR UNICODE UNIQUE VALUETOTEXT VAR.P VAR.S VSTACK WEBSERVICE WEIBULL.DIST WRAPCOLS WRAPROWS
XLOOKUP XMATCH XOR Z.TEST
"""

# Google Sheets functions that Excel does not have.
_SHEETS_ONLY = """
ADD ARRAY_CONSTRAIN ARRAYFORMULA AVERAGE.WEIGHTED CONTINUE COUNTUNIQUE COUNTUNIQUEIFS DIVIDE EPOCHTODATE EQ
FLATTEN GOOGLEFINANCE GOOGLETRANSLATE GT GTE IMPORTDATA IMPORTFEED IMPORTHTML IMPORTRANGE IMPORTXML ISBETWEEN
ISDATE ISEMAIL ISURL JOIN LT LTE MARGINOFERROR MINUS MULTIPLY NE PERCENTIF POW QUERY REGEXMATCH SORTN SPARKLINE
SPLIT TO_DATE TO_DOLLARS TO_PERCENT TO_PURE_NUMBER TO_TEXT UMINUS UNARY_PERCENT UPLUS
"""

# Excel functions Google Sheets lacks. Deliberately conservative: a name is listed only when its absence from
# Sheets is certain, because a false NON_PORTABLE_FUNCTION costs the user more than a missed one.
_EXCEL_NOT_IN_SHEETS = """
AGGREGATE ANCHORARRAY ARRAYTOTEXT CALL CUBEKPIMEMBER CUBEMEMBER CUBEMEMBERPROPERTY CUBERANKEDMEMBER CUBESET
CUBESETCOUNT CUBEVALUE DBCS EUROCONVERT FIELDVALUE FILTERXML GROUPBY INFO ISOMITTED JIS PERCENTOF PHONETIC PIVOTBY
PY REGEXTEST REGISTER.ID RTD SINGLE SORTBY STOCKHISTORY TRANSLATE TRIMRANGE VALUETOTEXT WEBSERVICE
"""

EXCEL_FUNCTIONS: frozenset[str] = frozenset((_EXCEL_2007 + _EXCEL_NEWER).split())
SHEETS_ONLY_FUNCTIONS: frozenset[str] = frozenset(_SHEETS_ONLY.split())
EXCEL_ONLY_FUNCTIONS: frozenset[str] = frozenset(_EXCEL_NOT_IN_SHEETS.split())
ALL_FUNCTIONS: frozenset[str] = EXCEL_FUNCTIONS | SHEETS_ONLY_FUNCTIONS

# Recalculated on every change anywhere in the workbook, whatever their inputs.
VOLATILE_FUNCTIONS: frozenset[str] = frozenset(
    ["NOW", "TODAY", "RAND", "RANDBETWEEN", "RANDARRAY", "OFFSET", "INDIRECT", "INFO", "CELL"]
)

# Functions whose purpose is to catch errors and substitute something else.
ERROR_MASKING_FUNCTIONS: frozenset[str] = frozenset({"IFERROR", "IFNA", "ISERROR", "ISERR"})

# Functions that pull data from outside the workbook.
EXTERNAL_DATA_FUNCTIONS: frozenset[str] = frozenset(
    ["IMPORTRANGE", "IMPORTDATA", "IMPORTHTML", "IMPORTXML", "IMPORTFEED", "WEBSERVICE", "RTD"]
)

LOOKUP_FUNCTIONS: frozenset[str] = frozenset({"VLOOKUP", "HLOOKUP", "MATCH", "LOOKUP", "XLOOKUP", "XMATCH"})

# Functions that read a reference's position or shape, not its value: a cell naming itself in them is no cycle.
REFERENCE_ONLY_FUNCTIONS: frozenset[str] = frozenset(
    {
        "ROW", "ROWS", "COLUMN", "COLUMNS", "AREAS", "ISREF", "SHEET", "SHEETS", "FORMULATEXT", "ISFORMULA",
        "CELL"
    }
)

# Aggregates over ranges, for which a range stopping one cell short of the data is a likely mistake.
RANGE_AGGREGATE_FUNCTIONS: frozenset[str] = frozenset(
    {
        "SUM", "AVERAGE", "AVERAGEA", "COUNT", "COUNTA", "MIN", "MINA", "MAX", "MAXA", "PRODUCT", "MEDIAN",
        "SUMPRODUCT", "SUMSQ", "STDEV", "STDEV.S", "STDEV.P", "STDEVA", "STDEVP", "VAR", "VAR.S", "VAR.P"
    }
)

# Functions that can return zero from non-zero-looking inputs, so dividing by them needs a guard.
ZERO_CAPABLE_FUNCTIONS: frozenset[str] = frozenset(
    {
        "SUM", "SUMIF", "SUMIFS", "SUMPRODUCT", "SUMSQ", "COUNT", "COUNTA", "COUNTBLANK", "COUNTIF", "COUNTIFS",
        "PRODUCT", "DAYS", "DAYS360", "NETWORKDAYS", "NETWORKDAYS.INTL", "DATEDIF", "YEARFRAC", "VLOOKUP",
        "HLOOKUP", "XLOOKUP", "INDEX", "LOOKUP", "MIN", "MAX", "MINIFS", "MAXIFS", "SUBTOTAL", "AGGREGATE", "N",
        "VALUE", "ROUND", "ROUNDDOWN", "ROUNDUP", "INT", "TRUNC", "MOD", "ABS"
    }
)

# Arguments (0-based positions) that select, count or format rather than carry a business value: a literal number
# there is part of the formula's structure, not a hidden assumption. "*" means every argument.
STRUCTURAL_ARGUMENTS: dict[str, frozenset[int] | str] = {
    "VLOOKUP": frozenset({2, 3}),
    "HLOOKUP": frozenset({2, 3}),
    "MATCH": frozenset({2}),
    "XMATCH": frozenset({2, 3}),
    "XLOOKUP": frozenset({3, 4, 5}),
    "LOOKUP": frozenset(),
    "INDEX": frozenset({1, 2, 3}),
    "OFFSET": frozenset({1, 2, 3, 4}),
    "CHOOSE": frozenset({0}),
    "CHOOSECOLS": "*",
    "CHOOSEROWS": "*",
    "TAKE": "*",
    "DROP": "*",
    "EXPAND": "*",
    "SEQUENCE": "*",
    "SORT": frozenset({1, 2, 3}),
    "SORTBY": "*",
    "UNIQUE": frozenset({1, 2}),
    "FILTER": frozenset(),
    "ROUND": frozenset({1}),
    "ROUNDUP": frozenset({1}),
    "ROUNDDOWN": frozenset({1}),
    "TRUNC": frozenset({1}),
    "FIXED": frozenset({1, 2}),
    "DOLLAR": frozenset({1}),
    "TEXT": frozenset({1}),
    "LEFT": frozenset({1}),
    "LEFTB": frozenset({1}),
    "RIGHT": frozenset({1}),
    "RIGHTB": frozenset({1}),
    "MID": frozenset({1, 2}),
    "MIDB": frozenset({1, 2}),
    "FIND": frozenset({2}),
    "SEARCH": frozenset({2}),
    "REPLACE": frozenset({1, 2}),
    "SUBSTITUTE": frozenset({3}),
    "REPT": frozenset({1}),
    "CHAR": "*",
    "UNICHAR": "*",
    "DATE": "*",
    "TIME": "*",
    "DATEDIF": "*",
    "WEEKDAY": frozenset({1}),
    "WEEKNUM": frozenset({1}),
    "EDATE": frozenset({1}),
    "EOMONTH": frozenset({1}),
    "WORKDAY.INTL": frozenset({2}),
    "NETWORKDAYS.INTL": frozenset({2}),
    "DAYS360": frozenset({2}),
    "YEARFRAC": frozenset({2}),
    "SUBTOTAL": frozenset({0}),
    "AGGREGATE": frozenset({0, 1, 3}),
    "LARGE": frozenset({1}),
    "SMALL": frozenset({1}),
    "RANK": frozenset({2}),
    "RANK.EQ": frozenset({2}),
    "RANK.AVG": frozenset({2}),
    "PERCENTILE": frozenset({1}),
    "PERCENTILE.INC": frozenset({1}),
    "PERCENTILE.EXC": frozenset({1}),
    "QUARTILE": frozenset({1}),
    "QUARTILE.INC": frozenset({1}),
    "QUARTILE.EXC": frozenset({1}),
    "MOD": frozenset({1}),
    "LOG": frozenset({1}),
    "BASE": "*",
    "DECIMAL": frozenset({1}),
    "DEC2BIN": frozenset({1}),
    "DEC2HEX": frozenset({1}),
    "DEC2OCT": frozenset({1}),
    "ADDRESS": "*",
    "INDIRECT": frozenset({1}),
    "CELL": "*",
    "INFO": "*",
    "ROW": "*",
    "COLUMN": "*",
    "TEXTSPLIT": frozenset({2, 3, 4}),
    "TEXTBEFORE": frozenset({2, 3, 4}),
    "TEXTAFTER": frozenset({2, 3, 4}),
    "WRAPROWS": frozenset({1}),
    "WRAPCOLS": frozenset({1}),
    "TOCOL": frozenset({1, 2}),
    "TOROW": frozenset({1, 2}),
    "RANDBETWEEN": "*",
    "RANDARRAY": "*",
    "PMT": frozenset({4}),
    "PV": frozenset({4}),
    "FV": frozenset({4}),
    "NPER": frozenset({4}),
    "IPMT": frozenset({5}),
    "PPMT": frozenset({5}),
    "SPLIT": frozenset({2, 3}),
    "SORTN": frozenset({1, 2, 3, 4}),
    "QUERY": frozenset({2}),
    "ARRAY_CONSTRAIN": frozenset({1, 2}),
}

_STORAGE_PREFIXES = ("_XLFN.", "_XLWS.")
USER_DEFINED_PREFIX = "_XLUDF."


def canonical_function_name(name: str) -> str:
    """Return `name` upper case without Excel's storage prefixes (`_xlfn.`, `_xlfn._xlws.`, `_xludf.`)."""
    upper = name.upper()
    stripped = True
    while stripped:
        stripped = False
        for prefix in (*_STORAGE_PREFIXES, USER_DEFINED_PREFIX):
            if upper.startswith(prefix):
                upper = upper[len(prefix):]
                stripped = True
    return upper


def is_known_function(name: str) -> bool:
    """Tell whether `name` (any case, prefixes allowed) is a real Excel or Google Sheets function."""
    return canonical_function_name(name) in ALL_FUNCTIONS


def is_structural_argument(function: str, position: int) -> bool:
    """Tell whether argument `position` (0-based) of canonical `function` selects or formats rather than computes."""
    spec = STRUCTURAL_ARGUMENTS.get(function)
    if spec is None:
        return False
    return spec == "*" or position in spec
