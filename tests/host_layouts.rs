//! The hosts' hand-written copies of the C structs (Python ctypes in the napari package and the plain-ctypes
//! example, JNA in the ImageJ plugin) against `include/unet.h`: each copy's fields must be the header's first
//! fields, in order, with types of the same size. A copy may stop early (`struct_size` tells the library which
//! version it is), but a field added, moved or retyped in the header without its copies fails here, not as a
//! silently misread option in a host.

use std::collections::HashMap;

/// What a C field type is, by size and kind: enough to catch a field copied with the wrong width.
fn kind_of_c(ty: &str) -> &'static str {
    let ty = ty.trim();
    if ty.contains('*') || ty == "UnetProgressCallback" {
        return "pointer";
    }
    match ty {
        "uint32_t" | "int32_t" | "UnetStatus" => "32-bit integer",
        "uint64_t" | "int64_t" => "64-bit integer",
        "size_t" | "uintptr_t" => "size_t",
        "float" => "float",
        "double" => "double",
        other => panic!("unknown C field type '{other}' in include/unet.h: teach this test its size"),
    }
}

fn kind_of_ctypes(ty: &str) -> &'static str {
    match ty {
        "C.c_uint32" | "C.c_int32" => "32-bit integer",
        "C.c_uint64" | "C.c_int64" => "64-bit integer",
        "C.c_size_t" => "size_t",
        "C.c_float" => "float",
        "C.c_double" => "double",
        "C.c_void_p" | "C.c_char_p" | "PROGRESS" | "N.PROGRESS" => "pointer",
        other => panic!("unknown ctypes type '{other}': teach this test its size"),
    }
}

fn kind_of_jna(ty: &str) -> &'static str {
    match ty {
        "int" => "32-bit integer",
        "long" => "64-bit integer",
        "SizeT" | "UnetLibrary.SizeT" => "size_t",
        "float" => "float",
        "double" => "double",
        "Pointer" | "String" | "ProgressCallback" => "pointer",
        other => panic!("unknown JNA type '{other}': teach this test its size"),
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Block comments and line comments removed.
fn without_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    out.push_str(rest);
    out.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The header's structs: name -> [(field, kind)].
fn header_structs() -> HashMap<String, Vec<(String, &'static str)>> {
    let header = without_comments(&read("include/unet.h"));
    let mut structs = HashMap::new();
    let mut rest = header.as_str();
    while let Some(i) = rest.find("typedef struct ") {
        rest = &rest[i + "typedef struct ".len()..];
        let name = rest.split_whitespace().next().unwrap().to_string();
        let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else { break };
        if open > rest.find(';').unwrap_or(usize::MAX) {
            continue; // a forward declaration (opaque handle)
        }
        let fields = rest[open + 1..close]
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|decl| {
                let (ty, field) = decl.rsplit_once(|c: char| c.is_whitespace() || c == '*').unwrap();
                let ty = if decl[..decl.len() - field.len()].contains('*') { format!("{ty}*") } else { ty.to_string() };
                (field.trim().to_string(), kind_of_c(&ty))
            })
            .collect();
        structs.insert(name, fields);
        rest = &rest[close..];
    }
    structs
}

fn check_prefix(
    host: &str,
    name: &str,
    copy: &[(String, &'static str)],
    header: &HashMap<String, Vec<(String, &str)>>,
) {
    let Some(fields) = header.get(name) else { panic!("{host}: {name} is not a struct of include/unet.h") };
    assert!(copy.len() <= fields.len(), "{host}: {name} has more fields than the header's");
    for (i, ((f, k), (hf, hk))) in copy.iter().zip(fields).enumerate() {
        assert_eq!(f, hf, "{host}: {name} field {i} is '{f}', the header's is '{hf}'");
        assert_eq!(k, hk, "{host}: {name}.{f} is a {k}, the header's a {hk}");
    }
}

#[test]
fn ctypes_copies_match_the_header() {
    let header = header_structs();
    assert!(header.len() >= 7, "parsed {} structs", header.len());
    for file in ["plugin/napari/src/unet_napari/_native.py", "plugin/python/segment_ctypes.py"] {
        let text = read(file);
        let mut checked = 0;
        for chunk in text.split("\nclass ").skip(1) {
            let Some(class) = chunk.split('(').next().filter(|_| chunk.contains("C.Structure")) else { continue };
            let body = &chunk[chunk.find("_fields_ = [").expect("a ctypes structure has _fields_") + 12..];
            let body = &body[..body.find("]\n").expect("the field list ends")];
            let copy: Vec<(String, &str)> = body
                .split("(\"")
                .skip(1)
                .map(|f| {
                    let (name, ty) = f.split_once("\", ").unwrap();
                    (name.to_string(), kind_of_ctypes(ty.split(')').next().unwrap().trim()))
                })
                .collect();
            let name = if class.starts_with("Unet") { class.to_string() } else { format!("Unet{class}") };
            check_prefix(file, &name, &copy, &header);
            checked += 1;
        }
        assert!(checked >= 2, "{file}: {checked} structures found");
    }
}

#[test]
fn jna_copies_match_the_header() {
    let header = header_structs();
    let file = "plugin/imagej/src/unet/imagej/UnetLibrary.java";
    let text = read(file);
    let mut checked = 0;
    for chunk in text.split("@Structure.FieldOrder({").skip(1) {
        let order: Vec<&str> =
            chunk[..chunk.find("})").unwrap()].split(',').map(|s| s.trim().trim_matches('"')).collect();
        let class = chunk.split("class ").nth(1).unwrap().split_whitespace().next().unwrap();
        let body = &chunk[chunk.find("extends Structure {").unwrap()..];
        let body = without_comments(&body[..body.find("\n    }").unwrap()]);
        let mut types = HashMap::new();
        for line in
            body.lines().map(str::trim).filter(|l| l.starts_with("public ") && l.ends_with(';') && !l.contains('('))
        {
            let decl = line.trim_start_matches("public ").trim_end_matches(';');
            let (ty, names) = decl.split_once(' ').unwrap();
            for n in names.split(',') {
                types.insert(n.trim().to_string(), kind_of_jna(ty));
            }
        }
        let copy: Vec<(String, &str)> = order
            .iter()
            .map(|f| (f.to_string(), *types.get(*f).unwrap_or_else(|| panic!("{class}.{f} is not declared"))))
            .collect();
        check_prefix(file, class, &copy, &header);
        checked += 1;
    }
    assert!(checked >= 6, "{file}: {checked} structures found");
}
