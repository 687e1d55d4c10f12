// A minimal DMS on VNPT's unmodified SDKVXP jar, for tests/e2e/test_vdxp_sdk.py (our code,
// not the SDK's). Like a field DMS it keeps one service object per kind for its whole life,
// so every call carries the parameters earlier calls set. It reads one command per line on
// stdin, "<command>\t<json headers>\t<argument>", and prints one "@@ {json}" line per result
// (the SDK prints its own lines on stdout too).
import com.google.gson.Gson;
import com.vpcp.services.AgencyServiceImp;
import com.vpcp.services.KnobstickServiceImp;
import com.vpcp.services.VnptProperties;
import com.vpcp.services.model.Agency;
import com.vpcp.services.model.BasicResult;
import com.vpcp.services.model.GetAgenciesResult;
import com.vpcp.services.model.GetEdocResult;
import com.vpcp.services.model.GetReceivedEdocResult;
import com.vpcp.services.model.GetSendEdocResult;
import com.vpcp.services.model.Knobstick;
import com.vpcp.services.model.SendEdocResult;
import com.vpcp.services.model.StatusResult;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class DmsDriver {
  public static void main(String[] args) throws Exception {
    VnptProperties properties = new VnptProperties(args[0], args[1], args[2], args[3], 10, 3);
    KnobstickServiceImp knobsticks = new KnobstickServiceImp(properties);
    AgencyServiceImp agencies = new AgencyServiceImp(properties);
    Gson gson = new Gson();
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      String[] parts = line.split("\t", -1);
      String command = parts[0];
      String headers = parts.length > 1 ? parts[1] : "{}";
      String argument = parts.length > 2 ? parts[2] : "";
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("command", command);
      BasicResult result = null;
      switch (command) {
        case "agencies": {
          GetAgenciesResult r = agencies.getAgenciesList(headers);
          result = r;
          if (r != null && r.getAgencies() != null) {
            List<String> codes = new ArrayList<>();
            for (Agency a : r.getAgencies()) codes.add(a.getCode());
            out.put("codes", codes);
          }
          break;
        }
        case "sync":
          result = agencies.getSynchronizeUnit(headers);
          break;
        case "register":
          result = agencies.registerAgency(headers, argument);
          break;
        case "delete":
          result = agencies.deleteAgency(headers);
          break;
        case "send": {
          SendEdocResult r = knobsticks.sendEdoc(headers, argument);
          result = r;
          if (r != null) out.put("docId", r.getDocID());
          break;
        }
        case "received": {
          GetReceivedEdocResult r = knobsticks.getReceivedEdocList(headers);
          result = r;
          if (r != null && r.getKnobsticks() != null) {
            List<Map<String, String>> items = new ArrayList<>();
            for (Knobstick k : r.getKnobsticks()) {
              Map<String, String> item = new LinkedHashMap<>();
              item.put("id", k.getId());
              item.put("from", k.getFrom());
              item.put("to", k.getTo());
              item.put("messageType", k.getMessageType());
              item.put("status", k.getStatus());
              items.add(item);
            }
            out.put("items", items);
          }
          break;
        }
        case "sent": {
          GetSendEdocResult r = knobsticks.getSentEdocList(headers);
          result = r;
          if (r != null && r.getStatusResult() != null) {
            List<Map<String, String>> items = new ArrayList<>();
            for (StatusResult s : r.getStatusResult()) {
              Map<String, String> item = new LinkedHashMap<>();
              item.put("senderDocId", s.getSenderDocId());
              item.put("toCode", s.getToCode());
              item.put("receiveStatus", s.getReceiveStatus());
              items.add(item);
            }
            out.put("items", items);
          }
          break;
        }
        case "get": {
          GetEdocResult r = knobsticks.getEdoc(headers);
          result = r;
          if (r != null) out.put("filePath", r.getFilePath());
          break;
        }
        case "update":
          result = knobsticks.updateStatus(headers);
          break;
        case "optional": {
          // A 2.0.1 operation by name (2.0.0 lacks them): getAgenciesListQD20,
          // countReceiveEdoc, countReceiveStatus, downloadEdoc.
          Object target = argument.equals("getAgenciesListQD20") ? agencies : knobsticks;
          java.lang.reflect.Method method;
          try {
            method = target.getClass().getMethod(argument, String.class);
          } catch (NoSuchMethodException e) {
            out.put("missing", true);
            break;
          }
          Object r = method.invoke(target, headers);
          if (r instanceof BasicResult) result = (BasicResult) r;
          if (r instanceof GetEdocResult) out.put("filePath", ((GetEdocResult) r).getFilePath());
          if (r instanceof GetAgenciesResult && ((GetAgenciesResult) r).getAgencies() != null) {
            List<String> codes = new ArrayList<>();
            for (Agency a : ((GetAgenciesResult) r).getAgencies()) codes.add(a.getCode());
            out.put("codes", codes);
          }
          if (r != null) {
            try {
              out.put("count", r.getClass().getMethod("getCount").invoke(r));
            } catch (NoSuchMethodException e) {
              // not a count
            }
          }
          break;
        }
        default:
          out.put("error", "unknown command");
      }
      out.put("null", result == null);
      if (result != null) {
        out.put("status", result.getStatus());
        out.put("errorCode", result.getErrorCode());
        out.put("errorDesc", result.getErrorDesc());
      }
      System.out.println("@@ " + gson.toJson(out));
      System.out.flush();
    }
  }
}
