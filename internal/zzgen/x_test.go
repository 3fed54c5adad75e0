package zzgen
import ("testing";"encoding/json";"github.com/getkin/kin-openapi/openapi3";"github.com/getkin/kin-openapi/openapi3gen";"github.com/mao-research/mao/api")
func TestX(t *testing.T){
	schemas := openapi3.Schemas{}
	for _, v := range []any{api.Tool{}, api.Run{}, api.Schedule{}, api.Dataset{}, api.ErrorBody{}} {
		ref, err := openapi3gen.NewSchemaRefForValue(v, schemas, openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{ExportComponentSchemas: true, ExportTopLevelSchema: true}))
		if err != nil { t.Fatal(err) }
		b, _ := json.Marshal(ref)
		t.Log(string(b)[:min(300,len(b))])
	}
	b, _ := json.MarshalIndent(schemas["Run"], "", " ")
	t.Log(len(schemas), string(b))
}
