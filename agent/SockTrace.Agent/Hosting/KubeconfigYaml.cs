using System.Globalization;
using System.Text;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// The part of YAML that kubeconfig files are written in: block mappings and sequences
/// (a sequence may sit at its key's indentation, as kubectl writes them), flow mappings and
/// sequences (`[{name: a}]`, and so JSON), plain, single- and double-quoted scalars, and
/// comments. A node is a <see cref="string"/>, null (an empty or `null`/`~` plain value),
/// a <see cref="List{T}"/> or a <see cref="Dictionary{TKey, TValue}"/>; scalars stay strings,
/// typed by the reader that knows the field. Anything beyond (anchors, aliases, tags, block
/// scalars, multi-line plain scalars, several documents) is refused with its line and column
/// rather than read wrongly.
/// </summary>
internal sealed class KubeconfigYaml
{
    private static readonly System.Buffers.SearchValues<char> HexChars = System.Buffers.SearchValues.Create("0123456789abcdefABCDEF");
    private readonly string _text;
    private int _pos;

    private KubeconfigYaml(string text) => _text = text.Replace("\r\n", "\n", StringComparison.Ordinal);

    /// <summary>The document's root node; a <see cref="FormatException"/> names what and where.</summary>
    public static object? Parse(string text)
    {
        var parser = new KubeconfigYaml(text);
        parser.SkipBlank();
        if (parser.AtLineStartWith("---"))
        {
            parser._pos += 3;
            parser.SkipBlank();
        }
        object? root = parser.AtEnd ? null : parser.ParseNode(-1);
        parser.SkipBlank();
        if (parser.AtLineStartWith("..."))
        {
            parser._pos += 3;
            parser.SkipBlank();
        }
        if (!parser.AtEnd)
            throw parser.Error(parser.AtLineStartWith("---") ? "more than one document" : "unexpected content");
        return root;
    }

    private bool AtEnd => _pos >= _text.Length;

    private char Current => _pos < _text.Length ? _text[_pos] : '\0';

    private char At(int offset) => _pos + offset < _text.Length ? _text[_pos + offset] : '\0';

    private int Column => ColumnOf(_pos);

    private int ColumnOf(int pos) => pos - (pos == 0 ? 0 : _text.LastIndexOf('\n', pos - 1) + 1);

    private bool AtDocumentMarker => AtLineStartWith("---") || AtLineStartWith("...");

    private bool AtLineStartWith(string marker) =>
        Column == 0 && string.CompareOrdinal(_text, _pos, marker, 0, marker.Length) == 0
        && (At(marker.Length) is ' ' or '\n' or '\0');

    /// <summary>A node starting here, whose block collections are indented more than <paramref name="parentIndent"/>.</summary>
    private object? ParseNode(int parentIndent)
    {
        int column = Column;
        if (column <= parentIndent)
            return null;
        char c = Current;
        if (c == '-' && IsBreakOrSpace(At(1)))
            return ParseBlockSequence(column);
        if (c is '[' or '{')
        {
            object? flow = ParseFlow();
            EndOfLine();
            return flow;
        }
        RefuseIndicator(c);
        int start = _pos;
        string? scalar = ParseScalar(flow: false, out bool quoted);
        SkipSpaces();
        if (Current == ':' && IsBreakOrSpace(At(1)))
        {
            _pos = start;
            return ParseBlockMapping(column);
        }
        EndOfLine();
        return quoted ? scalar : PlainValue(scalar);
    }

    private Dictionary<string, object?> ParseBlockMapping(int indent)
    {
        var map = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            RefuseIndicator(Current);
            int keyPos = _pos;
            string key = ParseScalar(flow: false, out _) ?? "";
            SkipSpaces();
            if (Current != ':' || !IsBreakOrSpace(At(1)))
                throw Error("a mapping key without ':'");
            _pos++;
            SkipSpaces();
            object? value;
            if (Current is '\n' or '\0' or '#')
            {
                SkipBlank();
                // A nested block is indented further, except that a sequence may sit at the key's own indentation.
                value = AtEnd ? null
                    : Column > indent ? ParseNode(indent)
                    : Column == indent && Current == '-' && IsBreakOrSpace(At(1)) ? ParseBlockSequence(indent)
                    : null;
            }
            else
            {
                value = ParseInlineValue();
            }
            if (!map.TryAdd(key, value))
                throw Error($"the key '{key}' appears twice in one mapping", keyPos);
            SkipBlank();
            if (AtEnd || Column < indent || AtDocumentMarker)
                return map;
            if (Column > indent)
                throw Error("this line is indented more than the mapping it is in");
            if (Current == '-' && IsBreakOrSpace(At(1)))
                throw Error("a sequence item where a mapping key was expected");
        }
    }

    private List<object?> ParseBlockSequence(int indent)
    {
        var list = new List<object?>();
        while (true)
        {
            _pos++; // the '-'
            SkipSpaces();
            if (Current is '\n' or '\0' or '#')
            {
                SkipBlank();
                list.Add(!AtEnd && Column > indent ? ParseNode(indent) : null);
            }
            else
            {
                // `- key: value` starts a mapping at the key's column; `- - x` a sequence in a sequence.
                list.Add(ParseNode(indent));
            }
            SkipBlank();
            if (AtEnd || Column < indent || AtDocumentMarker)
                return list;
            if (Column > indent)
                throw Error("this line is indented more than the sequence it is in");
            if (Current != '-' || !IsBreakOrSpace(At(1)))
                return list; // the next key of the mapping that holds this sequence
        }
    }

    /// <summary>A value on its key's line: a flow collection or a scalar, nothing after it.</summary>
    private object? ParseInlineValue()
    {
        char c = Current;
        if (c is '[' or '{')
        {
            object? flow = ParseFlow();
            EndOfLine();
            return flow;
        }
        if (c == '-' && IsBreakOrSpace(At(1)))
            throw Error("a block sequence cannot start on its key's line");
        RefuseIndicator(c);
        string? scalar = ParseScalar(flow: false, out bool quoted);
        SkipSpaces();
        if (Current == ':' && IsBreakOrSpace(At(1)))
            throw Error("a mapping cannot start on its key's line");
        EndOfLine();
        return quoted ? scalar : PlainValue(scalar);
    }

    private object? ParseFlow()
    {
        char open = Current;
        _pos++;
        char close = open == '[' ? ']' : '}';
        var list = open == '[' ? new List<object?>() : null;
        var map = open == '{' ? new Dictionary<string, object?>(StringComparer.Ordinal) : null;
        while (true)
        {
            SkipFlowBlank();
            if (Current == close)
            {
                _pos++;
                return (object?)list ?? map;
            }
            if (list is not null)
            {
                list.Add(ParseFlowNode());
            }
            else
            {
                int keyPos = _pos;
                RefuseIndicator(Current);
                string key = ParseScalar(flow: true, out _) ?? "";
                SkipFlowBlank();
                object? value = null;
                if (Current == ':')
                {
                    _pos++;
                    SkipFlowBlank();
                    value = Current is ',' or '}' ? null : ParseFlowNode();
                }
                if (!map!.TryAdd(key, value))
                    throw Error($"the key '{key}' appears twice in one mapping", keyPos);
            }
            SkipFlowBlank();
            if (Current == ',')
                _pos++;
            else if (Current != close)
                throw Error(AtEnd ? $"'{open}' is never closed" : $"expected ',' or '{close}'");
        }
    }

    private object? ParseFlowNode()
    {
        if (Current is '[' or '{')
            return ParseFlow();
        RefuseIndicator(Current);
        string? scalar = ParseScalar(flow: true, out bool quoted);
        return quoted ? scalar : PlainValue(scalar);
    }

    private string? ParseScalar(bool flow, out bool quoted)
    {
        quoted = Current is '"' or '\'';
        return Current switch
        {
            '"' => ParseDoubleQuoted(),
            '\'' => ParseSingleQuoted(),
            _ => ParsePlain(flow),
        };
    }

    private string ParsePlain(bool flow)
    {
        int start = _pos;
        while (!AtEnd)
        {
            char c = Current;
            if (c == '\n')
                break;
            if (c == ':' && (IsBreakOrSpace(At(1)) || (flow && At(1) is ',' or ']' or '}')))
                break;
            if (c == '#' && _pos > start && _text[_pos - 1] is ' ' or '\t')
                break;
            if (flow && c is ',' or '[' or ']' or '{' or '}')
                break;
            _pos++;
        }
        string value = _text[start.._pos].TrimEnd(' ', '\t');
        if (!flow && Current == '\n')
        {
            // A plain scalar that goes on on the next, more indented line is folded in YAML; kubeconfig files never do that.
            int save = _pos, indent = IndentOfLineAt(start);
            SkipBlank();
            bool continued = !AtEnd && Column > indent && !(Current == '-' && IsBreakOrSpace(At(1))) && !LooksLikeKey();
            _pos = save;
            if (continued)
                throw Error("a plain scalar continued on the next line (quote it, or keep it on one line)", start);
        }
        return value;
    }

    private bool LooksLikeKey()
    {
        int save = _pos;
        try
        {
            if (Current is '"' or '\'' or '[' or '{' or '#')
                return true;
            ParsePlainRaw();
            return Current == ':' && IsBreakOrSpace(At(1));
        }
        finally
        {
            _pos = save;
        }
    }

    private void ParsePlainRaw()
    {
        while (!AtEnd && Current != '\n' && !(Current == ':' && IsBreakOrSpace(At(1))))
            _pos++;
    }

    private string ParseSingleQuoted()
    {
        int start = _pos;
        _pos++;
        var value = new StringBuilder();
        while (true)
        {
            if (AtEnd)
                throw Error("a quoted scalar is never closed", start);
            char c = Current;
            _pos++;
            if (c == '\'')
            {
                if (Current != '\'')
                    return value.ToString();
                _pos++;
            }
            else if (c == '\n')
            {
                throw Error("a quoted scalar that spans lines", start);
            }
            value.Append(c);
        }
    }

    private string ParseDoubleQuoted()
    {
        int start = _pos;
        _pos++;
        var value = new StringBuilder();
        while (true)
        {
            if (AtEnd)
                throw Error("a quoted scalar is never closed", start);
            char c = Current;
            _pos++;
            if (c == '"')
                return value.ToString();
            if (c == '\n')
                throw Error("a quoted scalar that spans lines", start);
            if (c != '\\')
            {
                value.Append(c);
                continue;
            }
            char e = Current;
            _pos++;
            switch (e)
            {
                case '"' or '\\' or '/': value.Append(e); break;
                case 'n': value.Append('\n'); break;
                case 't': value.Append('\t'); break;
                case 'r': value.Append('\r'); break;
                case '0': value.Append('\0'); break;
                case 'b': value.Append('\b'); break;
                case 'f': value.Append('\f'); break;
                case ' ': value.Append(' '); break;
                case 'x': value.Append(Hex(2)); break;
                case 'u': value.Append(Hex(4)); break;
                case 'U': value.Append(char.ConvertFromUtf32(int.Parse(HexDigits(8), NumberStyles.HexNumber, CultureInfo.InvariantCulture))); break;
                default: throw Error($"the escape '\\{e}' in a double-quoted scalar");
            }
        }
    }

    private char Hex(int digits) => (char)int.Parse(HexDigits(digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private string HexDigits(int digits)
    {
        if (_pos + digits > _text.Length || _text.AsSpan(_pos, digits).ContainsAnyExcept(HexChars))
            throw Error("a bad hexadecimal escape in a double-quoted scalar");
        string hex = _text.Substring(_pos, digits);
        _pos += digits;
        return hex;
    }

    private static object? PlainValue(string? plain) => plain is null or "" or "~" or "null" or "Null" or "NULL" ? null : plain;

    private void RefuseIndicator(char c)
    {
        string? what = c switch
        {
            '&' => "an anchor",
            '*' => "an alias",
            '!' => "a tag",
            '|' or '>' => "a block scalar",
            '%' => "a directive",
            '@' or '`' => $"a plain scalar starting with '{c}'",
            '?' when IsBreakOrSpace(At(1)) => "a complex mapping key",
            '\t' => "a tab",
            _ => null,
        };
        if (what is not null)
            throw Error($"{what}, which kubeconfig files do not use");
    }

    /// <summary>Only a comment may follow on this line.</summary>
    private void EndOfLine()
    {
        SkipSpaces();
        if (Current == '#')
            SkipToLineEnd();
        if (!AtEnd && Current != '\n')
            throw Error("unexpected content after a value");
    }

    /// <summary>Past the spaces after content on this line.</summary>
    private void SkipSpaces()
    {
        while (Current is ' ' or '\t')
            _pos++;
    }

    private bool LineHasContentBefore()
    {
        for (int i = _pos - 1; i >= 0 && _text[i] != '\n'; i--)
        {
            if (_text[i] is not ' ' and not '\t')
                return true;
        }
        return false;
    }

    private void SkipToLineEnd()
    {
        while (!AtEnd && Current != '\n')
            _pos++;
    }

    /// <summary>Past spaces, comments and line breaks, to the next content (whose indentation must be spaces).</summary>
    private void SkipBlank()
    {
        while (!AtEnd)
        {
            char c = Current;
            if (c is ' ' or '\n')
                _pos++;
            else if (c == '#' && (_pos == 0 || _text[_pos - 1] is ' ' or '\n' or '\t'))
                SkipToLineEnd();
            else if (c == '\t' && !LineHasContentBefore())
                throw Error("a tab in indentation");
            else if (c == '\t')
                _pos++;
            else
                return;
        }
    }

    /// <summary>Inside a flow collection line breaks and indentation mean nothing.</summary>
    private void SkipFlowBlank()
    {
        while (!AtEnd)
        {
            char c = Current;
            if (c is ' ' or '\n' or '\t')
                _pos++;
            else if (c == '#' && (_pos == 0 || _text[_pos - 1] is ' ' or '\n' or '\t'))
                SkipToLineEnd();
            else
                return;
        }
    }

    private int IndentOfLineAt(int pos)
    {
        int start = pos == 0 ? 0 : _text.LastIndexOf('\n', pos - 1) + 1;
        int i = start;
        while (i < _text.Length && _text[i] == ' ')
            i++;
        return i - start;
    }

    private int LineOf(int pos)
    {
        int line = 1;
        for (int i = 0; i < pos && i < _text.Length; i++)
        {
            if (_text[i] == '\n')
                line++;
        }
        return line;
    }

    private static bool IsBreakOrSpace(char c) => c is ' ' or '\t' or '\n' or '\0';

    private FormatException Error(string what) => Error(what, _pos);

    private FormatException Error(string what, int pos) => new($"line {LineOf(pos)}, column {ColumnOf(pos) + 1}: {what}");
}
